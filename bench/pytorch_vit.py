"""patchwork's ViT family in plain PyTorch, with patchwork's (and, where timm has them, timm's)
parameter names and shapes, so that a patchwork `model.safetensors` loads with strict=True:
patch or convolutional tokenizer (CCT's conv -> ReLU -> max-pool layers, `patch_embed.conv.{i}`),
class-token, mean or sequence pooling (`attention_pool`), learned, fixed 2-D sin-cos or no
position embedding. Used by bench/pytorch_reference.py (speed, logits) and
bench/pytorch_recipe.py (accuracy per minute)."""
import torch
import torch.nn as nn
import torch.nn.functional as F

CONFIG = dict(image_size=32, patch_size=4, channels=3, num_classes=10, dim=128, depth=6, heads=4,
              mlp_dim=256, pool="cls", pos_embed="learn", stem="patch", stem_layers=2,
              stem_channels=64, stem_kernel=3, stem_stride=1, stem_pool="max", eps=1e-6,
              qkv_bias=True)
PRESETS = {
    "nano": dict(dim=128, depth=6, heads=4, mlp_dim=256),
    "lite": dict(dim=256, depth=7, heads=4, mlp_dim=512),
    "small": dict(dim=384, depth=7, heads=12, mlp_dim=384),
}


class Attention(nn.Module):
    def __init__(self, dim, heads, qkv_bias):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, D = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = ((q @ k.transpose(-2, -1)) * (q.shape[-1] ** -0.5)).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(B, N, D))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.norm1 = nn.LayerNorm(c["dim"], eps=c["eps"])
        self.attn = Attention(c["dim"], c["heads"], c["qkv_bias"])
        self.norm2 = nn.LayerNorm(c["dim"], eps=c["eps"])
        self.mlp = Mlp(c["dim"], c["mlp_dim"])

    def forward(self, x):
        x = x + self.attn(self.norm1(x))  # float32 + bf16 under autocast: float32
        return x + self.mlp(self.norm2(x))


class ConvStem(nn.Module):
    """CCT's tokenizer: per layer conv (no bias) -> ReLU -> 3x3 stride-2 max-pool."""

    def __init__(self, c):
        super().__init__()
        widths = [c["channels"]] + [c["stem_channels"]] * (c["stem_layers"] - 1) + [c["dim"]]
        k, s = c["stem_kernel"], c["stem_stride"]
        self.conv = nn.ModuleList(nn.Conv2d(widths[i], widths[i + 1], k, s, k // 2, bias=False)
                                  for i in range(c["stem_layers"]))
        for conv in self.conv:
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
        self.pool = c["stem_pool"] == "max"
        side = c["image_size"]
        for _ in range(c["stem_layers"]):
            side = (side + 2 * (k // 2) - k) // s + 1
            if self.pool:
                side = (side + 2 - 3) // 2 + 1
        self.grid = side

    def forward(self, x):
        for conv in self.conv:
            x = F.relu(conv(x))
            if self.pool:
                x = F.max_pool2d(x, 3, 2, 1)
        return x.flatten(2).transpose(1, 2)


class PatchEmbed(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.proj = nn.Conv2d(c["channels"], c["dim"], c["patch_size"], c["patch_size"])
        self.grid = c["image_size"] // c["patch_size"]

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


def sincos_2d(grid, dim):
    """MAE's fixed 2-D sine-cosine embedding (get_2d_sincos_pos_embed), as patchwork's
    sincos_pos_embed_2d: [sin(c w), cos(c w), sin(r w), cos(r w)] for the token in row r, column
    c. The first half encodes the column: MAE's emb_h reads grid[0], which its
    np.meshgrid(grid_w, grid_h) fills with column indices."""
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim / 4))
    ys, xs = torch.meshgrid(torch.arange(grid, dtype=torch.float64),
                            torch.arange(grid, dtype=torch.float64), indexing="ij")
    parts = []
    for pos in (xs.flatten(), ys.flatten()):
        out = pos[:, None] * omega[None]
        parts += [out.sin(), out.cos()]
    return torch.cat(parts, dim=1).float()


class VisionTransformer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.patch_embed = ConvStem(c) if c["stem"] == "conv" else PatchEmbed(c)
        n = self.patch_embed.grid ** 2
        prefix = 1 if c["pool"] == "cls" else 0
        if prefix:
            self.cls_token = nn.Parameter(torch.zeros(1, 1, c["dim"]))
        if c["pos_embed"] == "learn":
            self.pos_embed = nn.Parameter(torch.randn(1, n + prefix, c["dim"]) * 0.02)
        elif c["pos_embed"] == "sincos":
            table = sincos_2d(self.patch_embed.grid, c["dim"])
            table = torch.cat([torch.zeros(prefix, c["dim"]), table])[None]
            self.register_buffer("pos_embed", table, persistent=False)
        else:
            self.pos_embed = None
        self.blocks = nn.Sequential(*[Block(c) for _ in range(c["depth"])])
        self.norm = nn.LayerNorm(c["dim"], eps=c["eps"])
        if c["pool"] == "attn":
            self.attention_pool = nn.Linear(c["dim"], 1)
        self.head = nn.Linear(c["dim"], c["num_classes"])
        self.apply(self._init)

    @staticmethod
    def _init(m):
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:  # qkv_bias=false
                nn.init.zeros_(m.bias)

    def forward(self, x):
        # The residual stream stays float32 under autocast (as patchwork's): torch 1.13's CPU
        # layer_norm refuses a bf16 input with float32 weights.
        x = self.patch_embed(x).float()
        if self.c["pool"] == "cls":
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        if self.pos_embed is not None:
            x = x + self.pos_embed
        x = self.norm(self.blocks(x))
        if self.c["pool"] == "cls":
            x = x[:, 0]
        elif self.c["pool"] == "mean":
            x = x.mean(1)
        else:
            w = self.attention_pool(x).softmax(dim=1)  # (B, T, 1)
            x = (w.transpose(1, 2) @ x).squeeze(1)
        return self.head(x)




def make_config(preset="nano", overrides=(), base=None):
    """A preset with `key=value` overrides (as `vit train --model`), or a saved config dict."""
    c = dict(CONFIG, **PRESETS[preset])
    c.update({k: v for k, v in (base or {}).items() if k in CONFIG})
    for kv in overrides:
        key, _, value = kv.partition("=")
        if key not in c:
            raise ValueError(f"--model: unknown config field '{key}'")
        c[key] = value in ("true", "1") if isinstance(c[key], bool) else type(c[key])(value)
    return c


def forward_flops(c):
    """2 x multiply-accumulates of one forward pass on one image (same count as `vit bench`)."""
    model = VisionTransformer(c)
    D, M = c["dim"], c["mlp_dim"]
    N = model.patch_embed.grid ** 2
    T = N + (1 if c["pool"] == "cls" else 0)
    if c["stem"] == "conv":
        macs, side, k, s = 0, c["image_size"], c["stem_kernel"], c["stem_stride"]
        for conv in model.patch_embed.conv:
            side = (side + 2 * (k // 2) - k) // s + 1
            macs += side * side * conv.weight.numel()
            if model.patch_embed.pool:
                side = (side + 2 - 3) // 2 + 1
    else:
        macs = N * c["patch_size"] ** 2 * c["channels"] * D
    macs += c["depth"] * (T * D * 3 * D + 2 * T * T * D + T * D * D + 2 * T * D * M)
    macs += D * c["num_classes"]
    return 2.0 * macs
