"""Reference for tests/sgd.rs: torch.optim.SGD on the parameters and gradients the Rust test wrote.

usage: sgd_reference.py IN.safetensors OUT.safetensors MOMENTUM NESTEROV WEIGHT_DECAY WD_ON_1D LR[,LR...]
IN holds param.<name> and grad.<step>.<name>; OUT gets param.<name> and momentum.<name> after the steps.
"""
import sys

import torch
from safetensors.torch import load_file, save_file

src, dst, momentum, nesterov, weight_decay, wd_on_1d, lrs = sys.argv[1:]
momentum, weight_decay = float(momentum), float(weight_decay)
nesterov, wd_on_1d = nesterov == "true", wd_on_1d == "true"
lrs = [float(x) for x in lrs.split(",")]

tensors = load_file(src)
names = sorted(k[len("param."):] for k in tensors if k.startswith("param."))
params = {n: torch.nn.Parameter(tensors["param." + n].clone()) for n in names}
decayed = [params[n] for n in names if wd_on_1d or params[n].dim() > 1]
exempt = [params[n] for n in names if not (wd_on_1d or params[n].dim() > 1)]
groups = [{"params": decayed, "weight_decay": weight_decay}]
if exempt:
    groups.append({"params": exempt, "weight_decay": 0.0})
opt = torch.optim.SGD(groups, lr=lrs[0], momentum=momentum, nesterov=nesterov, foreach=False)
for step, lr in enumerate(lrs):
    for group in opt.param_groups:
        group["lr"] = lr
    for n in names:
        params[n].grad = tensors[f"grad.{step}.{n}"].clone()
    opt.step()

out = {f"param.{n}": params[n].detach() for n in names}
if momentum > 0:
    out.update({f"momentum.{n}": opt.state[params[n]]["momentum_buffer"] for n in names})
save_file(out, dst)
