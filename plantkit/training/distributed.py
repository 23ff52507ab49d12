"""Data-parallel training over several processes with torch.distributed, Keras owning the loop.

Keras 3's `fit` on the torch backend knows nothing of DistributedDataParallel, and wrapping
the backbone in DDP under Keras's TorchModuleWrapper would rename its parameters
(`module.` prefixes: other checkpoint keys) and hand DDP a backward pass it does not drive.
So plantkit keeps `fit` as it is in every process and makes the processes agree where DDP
would, in the manner of Horovod's distributed optimiser:

- the same starting weights: rank 0's parameters and buffers are broadcast before `fit`;
- the same step: plantkit's TorchSGD averages the gradients over the processes (one
  all-reduce of one flat tensor) before it applies them, so every process applies the
  update of the global batch and the weights stay identical;
- the same BatchNorm statistics: rank 0's buffers are broadcast after every step, as DDP's
  `broadcast_buffers` does (or SyncBatchNorm, `--sync-bn`, normalises over the global batch);
- one global batch order: each process reads its block of every global batch of the one
  epoch order (plantkit.data.loading.EpochSampler with `rank` / `world`), so N processes of
  --batch-size B follow the order of one process of batch N x B;
- one writer: only rank 0 writes checkpoints, history, the store and progress; rank 0 alone
  decides the run (options, resume point) and tells the others.

The processes are started by torchrun (`torchrun --nproc_per_node N -m plantkit train ...`,
several machines with its --nnodes / --rdzv options) or by `plantkit train --devices N`
(plantkit.training.launch); both pass RANK, WORLD_SIZE, LOCAL_RANK and MASTER_ADDR/PORT in
the environment, which `init` reads (env://). gloo on CPU, NCCL on CUDA (one GPU a process).
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

# How long a process waits for the others at a collective before it gives up: long enough
# for rank 0's prediction of val and test at the end, short enough not to hang for hours
# when a peer has died.
TIMEOUT = datetime.timedelta(minutes=30)


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (rank 0 of 1 when alone)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """The process that writes and speaks."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def world_from_env() -> World:
    """The World that torchrun (or `--devices`) set in the environment; alone when unset."""
    try:
        return World(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                     int(os.environ.get("LOCAL_RANK", 0)))
    except ValueError as exc:
        raise RuntimeError(f"torchrun's RANK / WORLD_SIZE / LOCAL_RANK are not integers: {exc}"
                           ) from None


def init(world: World) -> None:
    """Join the process group (once): NCCL with this process's GPU where there are GPUs, else
    gloo; Keras's tensors go to that GPU too."""
    if not world.distributed or dist.is_initialized():
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(world.local_rank)
        from keras.src.backend.common import global_state

        global_state.set_global_attribute("torch_device", f"cuda:{world.local_rank}")
        dist.init_process_group("nccl", timeout=TIMEOUT)
    else:
        dist.init_process_group("gloo", timeout=TIMEOUT)


def active() -> bool:
    """Several processes train together (the process group is up and has more than one)."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def average_gradients(grads: list[torch.Tensor]) -> None:
    """Replace every process's gradients, in place, by their mean over the processes."""
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat.div_(dist.get_world_size())
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset:offset + n].view_as(g))
        offset += n


def broadcast_module(module: torch.nn.Module, *, buffers_only: bool = False) -> None:
    """Rank 0's parameters (unless `buffers_only`) and buffers, in place, on every process."""
    with torch.no_grad():
        tensors: list[torch.Tensor] = [] if buffers_only else list(module.parameters())
        tensors += [b for b in module.buffers() if b.numel()]
        for tensor in tensors:
            dist.broadcast(tensor.data, src=0)


def broadcast_object(value, world: World):
    """Rank 0's `value` (any picklable object) on every process."""
    if not world.distributed:
        return value
    box = [value if world.main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if active():
        dist.barrier()


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
