// The subcommands of `vit`, for main.cpp to register in one place.
#pragma once
#include "apps/commands/allreduce.h"
#include "apps/commands/attention.h"
#include "apps/commands/bench.h"
#include "apps/commands/command.h"
#include "apps/commands/eval.h"
#include "apps/commands/patches.h"
#include "apps/commands/plot.h"
#include "apps/commands/predict.h"
#include "apps/commands/summary.h"
#include "apps/commands/train.h"
