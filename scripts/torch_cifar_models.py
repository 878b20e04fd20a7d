"""ResNeXt-29 / SENet-29 / SKNet-29 for CIFAR in plain PyTorch, written independently of sk-exp from the
papers' descriptions, with the same state_dict keys as sk-exp (timm-style names). Used as the PyTorch side
of benchmarks and as an oracle in tests."""
import torch
from torch import nn


class ConvBn(nn.Module):
    def __init__(self, c_in, c_out, k, stride=1, dilation=1, groups=1, relu=True):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, stride, dilation * (k - 1) // 2, dilation, groups, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.relu = relu

    def forward(self, x):
        x = self.bn(self.conv(x))
        return torch.relu(x) if self.relu else x


class SkAttn(nn.Module):
    def __init__(self, channels, paths, d):
        super().__init__()
        self.fc_reduce = nn.Conv2d(channels, d, 1, bias=False)
        self.bn = nn.BatchNorm2d(d)
        self.fc_select = nn.Conv2d(d, channels * paths, 1, bias=False)


class SelectiveKernel(nn.Module):
    """Paths (kernel, dilation) with BN+ReLU each; fuse by sum and pool; select by softmax over paths."""

    def __init__(self, c, stride, groups, paths, reduction, min_dim):
        super().__init__()
        self.paths = nn.ModuleList([ConvBn(c, c, k, stride, d, groups) for k, d in paths])
        self.attn = SkAttn(c, len(paths), max(c // reduction, min_dim))

    def forward(self, x):
        feats = torch.stack([p(x) for p in self.paths], 1)  # N, M, C, H, W
        s = feats.sum(1).mean((2, 3), keepdim=True)
        z = torch.relu(self.attn.bn(self.attn.fc_reduce(s)))
        a = self.attn.fc_select(z).view(x.shape[0], len(self.paths), -1, 1, 1).softmax(1)
        return (feats * a).sum(1)


class SE(nn.Module):
    def __init__(self, c, reduction=16):
        super().__init__()
        self.fc1 = nn.Conv2d(c, c // reduction, 1)
        self.fc2 = nn.Conv2d(c // reduction, c, 1)

    def forward(self, x):
        return x * torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean((2, 3), keepdim=True)))))


class Bottleneck(nn.Module):
    def __init__(self, c_in, width, c_out, stride, groups, sk=None, se=False):
        super().__init__()
        if sk:
            self.conv1 = ConvBn(c_in, width, 1)
            self.conv2 = SelectiveKernel(width, stride, groups, **sk)
            self.conv3 = ConvBn(width, c_out, 1, relu=False)
            self.body = [self.conv1, self.conv2, self.conv3]
        else:
            self.conv1 = nn.Conv2d(c_in, width, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(width)
            self.conv2 = nn.Conv2d(width, width, 3, stride, 1, groups=groups, bias=False)
            self.bn2 = nn.BatchNorm2d(width)
            self.conv3 = nn.Conv2d(width, c_out, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(c_out)
            self.body = None
        self.se = SE(c_out) if se else None
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        if self.body is not None:
            y = self.conv3(self.conv2(self.conv1(x)))
        else:
            y = torch.relu(self.bn1(self.conv1(x)))
            y = torch.relu(self.bn2(self.conv2(y)))
            y = self.bn3(self.conv3(y))
        if self.se is not None:
            y = self.se(y)
        return torch.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNeXt29(nn.Module):
    def __init__(self, cardinality, width, num_classes=10, sk=None, se=False):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        c_in = 64
        for stage, c_out in enumerate([256, 512, 1024]):
            inner = cardinality * width * 2 ** stage
            blocks = [Bottleneck(c_in if i == 0 else c_out, inner, c_out, 2 if stage > 0 and i == 0 else 1,
                                 cardinality, sk, se) for i in range(3)]
            setattr(self, f"layer{stage + 1}", nn.Sequential(*blocks))
            c_in = c_out
        self.fc = nn.Linear(1024, num_classes)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(x.mean((2, 3)))


SK29 = dict(paths=[(3, 1), (1, 1)], reduction=32, min_dim=32)

MODELS = {
    "resnext29_16x32d": lambda classes: ResNeXt29(16, 32, classes),
    "resnext29_8x64d": lambda classes: ResNeXt29(8, 64, classes),
    "resnext29_16x64d": lambda classes: ResNeXt29(16, 64, classes),
    "senet29": lambda classes: ResNeXt29(8, 64, classes, se=True),
    "sknet29": lambda classes: ResNeXt29(16, 32, classes, sk=SK29),
}


def build(name, num_classes=10):
    return MODELS[name](num_classes)
