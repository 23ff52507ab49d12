"""Experts: image classifiers over a timm or torchvision backbone, as Keras 3 models.

An expert's config holds only plain values (architecture, number of classes, source,
input size, normalisation, amp); the backbone is rebuilt from them and its weights live
in a separate state_dict, so saving and loading never pickles a torch module.
"""

from __future__ import annotations

import contextlib
import io
import json
from os import PathLike
from pathlib import Path
from typing import Any

import torch

from plantkit.artifacts import (
    EXPERT_FILE,
    WEIGHTS_FILE,
    sha256_bytes,
    write_bytes,
    write_text,
)
from plantkit.backend import keras  # keras on the torch backend (see plantkit.backend)
from plantkit.choices import IMAGENET_MEAN, IMAGENET_STD
from plantkit.data.transforms import normalize_uint8
from plantkit.errors import PlantkitInputError
from plantkit.models import checkpoints, registry

# What an expert folder must hold lives torch-free, so the CLI checks it before torch loads.
from plantkit.models.expert_files import (
    EXPERT_FORMAT,
    EXPERT_FORMAT_VERSION,
    check_expert_folder,
    check_expert_weights,
    read_expert_json,
)
from plantkit.models.flops import count_gflops, count_params

# The devices whose bfloat16 autocast `amp` turns on.
AMP_DEVICES = ("cuda", "cpu")


@keras.saving.register_keras_serializable(package="plantkit", name="Expert")
class Expert(keras.Model):
    """A classifier of images (N x 3 x H x W float tensors, normalised) into `num_classes` logits.

    `call` takes `training` and passes it to the backbone, so BatchNorm and dropout run in
    eval mode unless training is True (Keras's wrapper would otherwise treat None as
    training). With `amp`, the backbone runs under bfloat16 autocast on CUDA and on the CPU
    (torch's autocast for both; channels_last too on CUDA); logits are always float32.
    """

    def __init__(
        self,
        arch: str,
        num_classes: int,
        source: str | None = None,
        input_size: int = 224,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        amp: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(num_classes) < 1:
            raise PlantkitInputError(f"number of classes must be at least 1, got {num_classes}")
        self._spec = registry.resolve_arch(arch, source)
        self._config: dict[str, Any] = {
            "arch": arch,
            "num_classes": int(num_classes),
            "source": self._spec.source,
            "input_size": int(input_size),
            "mean": [float(v) for v in mean],
            "std": [float(v) for v in std],
            "amp": bool(amp),
        }
        # The device Keras's torch backend (and so TorchModuleWrapper) puts everything on.
        from keras.src.backend.torch.core import get_device

        device = torch.device(get_device())
        module = registry.build_backbone(self._spec, int(num_classes)).to(device)
        # bfloat16 autocast where torch offers it for the device; elsewhere amp is a no-op.
        self._autocast_device = device.type if amp and device.type in AMP_DEVICES else None
        self._channels_last = self._autocast_device == "cuda"
        if self._channels_last:
            # Before wrapping: the wrapper's Keras variables must hold the final tensors.
            module = module.to(memory_format=torch.channels_last)
        self.wrapper = keras.layers.TorchModuleWrapper(module, name="backbone")
        # Only the name: a torch module set as an attribute would be wrapped (and its
        # parameters tracked) a second time by Keras.
        self._classifier_name, _ = registry.classifier_module(module, self._spec,
                                                              int(num_classes))
        self._info: dict[str, Any] | None = None
        self._backbone_frozen = False
        self.built = True

    @property
    def backbone(self) -> torch.nn.Module:
        """The torch module; its state_dict uses the timm/torchvision key names."""
        return self.wrapper.module

    @property
    def config(self) -> dict:
        """Plain values that rebuild this expert (weights aside)."""
        return json.loads(json.dumps(self._config))

    @property
    def device(self) -> torch.device:
        return next(self.backbone.parameters()).device

    @property
    def classifier_name(self) -> str:
        """Qualified name of the backbone's last layer (``fc``, ``classifier.1`` ...)."""
        return self._classifier_name

    @property
    def info(self) -> dict:
        """{'params', 'gflops' (per image at the eval input size), 'feature_dim'}; computed once."""
        if self._info is None:
            self._info = {
                "params": count_params(self.backbone),
                "gflops": count_gflops(self.backbone, self._config["input_size"]),
                "feature_dim": self._feature_dim(),
            }
        return dict(self._info)

    def call(self, x, training=False):
        if self._backbone_frozen and len(x.shape) == 2:
            # Penultimate feature rows (cRT on stored features, plantkit.training
            # .head_features): only the classifier runs.
            x = torch.as_tensor(x).to(self.device, dtype=torch.float32, non_blocking=True)
            with self._autocast():
                return self._classifier()(x).float()
        x = self._to_device(x)
        with self._autocast():
            # A frozen backbone runs in eval mode in training too: BatchNorm keeps its
            # statistics and only the classifier learns (cRT).
            logits = self.wrapper(x, training=bool(training) and not self._backbone_frozen)
        return logits.float()

    def freeze_backbone(self) -> None:
        """Train only the classifier from now on (decoupled classifier retraining, Kang et
        al. 2020): every other parameter is left out of the trainable variables, so the
        optimizer never sees it and autograd never computes its gradient. Call before
        compile."""
        head = {id(p) for p in self._classifier().parameters()}
        for variable in self.wrapper.variables:
            variable.trainable = id(variable.value) in head
        self._backbone_frozen = True

    def reset_classifier(self) -> None:
        """Random classifier weights (torch's default initialisation of the layer), in place:
        the Keras variables keep wrapping the same tensors."""
        head = self._classifier()
        reset = getattr(head, "reset_parameters", None)
        if not callable(reset):
            raise PlantkitInputError(f"{self._config['arch']}'s classifier "
                                     f"({type(head).__name__}) cannot be re-initialised")
        with torch.no_grad():
            reset()

    def predict_batch(self, x, *, features: bool = False):
        """Eval-mode logits (float32) and, with `features`, penultimate features (float32).

        Both are torch tensors on the expert's device, made under torch.inference_mode
        (so they cannot enter autograd); features come from the same forward pass as the
        logits.
        """
        with torch.inference_mode():
            if not features:
                return self(x, training=False), None
            return self._logits_and_features(x)

    def get_config(self) -> dict:
        return {**super().get_config(), **self.config}

    def _to_device(self, x) -> torch.Tensor:
        x = torch.as_tensor(x)
        if x.dtype == torch.uint8:
            # Crops the loaders left unnormalised for an accelerator (a quarter of the bytes
            # to copy): normalised here, on the device, with this expert's mean and std.
            x = normalize_uint8(x.to(self.device, non_blocking=True), self._config["mean"],
                                self._config["std"])
        else:
            x = x.to(self.device, dtype=torch.float32, non_blocking=True)
        if self._channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _autocast(self):
        if self._autocast_device is not None:
            return torch.autocast(self._autocast_device, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _logits_and_features(self, x):
        module = self.backbone
        module.eval()
        x = self._to_device(x)
        with self._autocast():
            if self._spec.source == "timm":
                # timm's own split of the forward pass: pre_logits is what the head sees.
                trunk = module.forward_features(x)
                features = module.forward_head(trunk, pre_logits=True)
                logits = module.forward_head(trunk)
            else:
                captured = {}
                hook = self._classifier().register_forward_pre_hook(
                    lambda _module, args: captured.setdefault("input", args[0])
                )
                try:
                    logits = module(x)
                finally:
                    hook.remove()
                features = captured["input"]
                if features.ndim == 4:  # squeezenet's head is a 1x1 conv over a feature map
                    features = features.mean(dim=(2, 3))
        return logits.float(), features.flatten(1).float()

    def _classifier(self) -> torch.nn.Module:
        return self.backbone.get_submodule(self._classifier_name)

    def _feature_dim(self) -> int:
        head = self._classifier()
        if isinstance(head, torch.nn.Linear):
            return head.in_features
        if isinstance(head, torch.nn.Conv2d):
            return head.in_channels
        size = self._config["input_size"]
        probe = torch.zeros(1, 3, size, size)
        return int(self.predict_batch(probe, features=True)[1].shape[1])


def create_expert(
    arch: str,
    num_classes: int,
    *,
    source: str | None = None,
    pretrained: bool = False,
    weights: str | PathLike | None = None,
    input_size: int = 224,
    mean=None,
    std=None,
    amp: bool = False,
) -> Expert:
    """A new expert, randomly initialised, or from cached ImageNet weights or a weights file.

    `pretrained` uses weights already in the local timm / torch hub cache (never the
    network). `weights` is a state_dict or checkpoint file; a classifier for another
    number of classes in it is replaced by a fresh one. `mean`/`std` default to the
    pretrained weights' normalisation, else ImageNet's.
    """
    if pretrained and weights is not None:
        raise PlantkitInputError("pass either --pretrained or --weights, not both")
    spec = registry.resolve_arch(arch, source)
    cached = _cached_pretrained_file(spec, arch) if pretrained else None
    if mean is None or std is None:
        default_mean, default_std = _pretrained_normalisation(spec) if pretrained else (
            IMAGENET_MEAN, IMAGENET_STD)
        mean = default_mean if mean is None else mean
        std = default_std if std is None else std
    expert = Expert(arch, num_classes, source=spec.source, input_size=input_size, mean=mean,
                    std=std, amp=amp)
    if cached is not None:
        _load_pretrained(expert, spec, cached)
    elif weights is not None:
        state, _ = checkpoints.read_checkpoint(weights)
        checkpoints.load_backbone_state(
            expert.backbone, state, classifier=expert.classifier_name,
            num_classes=expert.config["num_classes"], origin=str(weights), new_head=True,
        )
    return expert


def save_expert(
    expert: Expert,
    directory: str | PathLike,
    *,
    class_ids: list[str] | None = None,
    fingerprint: str | None = None,
    origin: dict | None = None,
) -> Path:
    """Write ``expert.json`` (config, info and the optional fields) and ``weights.pt``.

    The weights are the backbone's full state_dict (BatchNorm statistics included) on the
    CPU, loadable into the plain timm/torchvision model; its sha256 is recorded in
    ``expert.json`` and verified by every load. Each file goes through the write protocol
    (the caller holds the lock of `directory` or of the artifact above it); other files in
    `directory` (history, predictions) are left alone.
    """
    if class_ids is not None and len(class_ids) != expert.config["num_classes"]:
        raise PlantkitInputError(
            f"{len(class_ids)} class ids for an expert with {expert.config['num_classes']} "
            "classes"
        )
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", copy=True) for k, v in expert.backbone.state_dict().items()}
    # Serialised in memory first: torch.save streaming into a full disk fails with a
    # confusing "unexpected pos" error, and the bytes give the checksum for free.
    buffer = io.BytesIO()
    torch.save(state, buffer)
    weights = buffer.getvalue()
    write_bytes(directory / WEIGHTS_FILE, weights)
    document = {
        "format": EXPERT_FORMAT,
        "format_version": EXPERT_FORMAT_VERSION,
        "config": expert.config,
        "info": expert.info,
        "weights_sha256": sha256_bytes(weights),
    }
    optional = {"class_ids": class_ids, "fingerprint": fingerprint, "origin": origin}
    document.update({k: v for k, v in optional.items() if v is not None})
    # expert.json last: its presence marks a complete expert.
    write_text(directory / EXPERT_FILE, json.dumps(document, indent=2) + "\n")
    return directory


def load_expert(directory: str | PathLike, *, amp: bool | None = None) -> Expert:
    """The expert saved in `directory` by save_expert, with its weights and stored info;
    `amp` (when given) overrides the saved config's bfloat16 autocast for this run."""
    directory = Path(directory)
    document = check_expert_folder(directory)  # the weights' sha256 too (once per process)
    config = dict(document["config"])
    if amp is not None:
        config["amp"] = bool(amp)
    expert = Expert.from_config(config)
    state, _ = checkpoints.read_checkpoint(directory / WEIGHTS_FILE)
    checkpoints.load_backbone_state(expert.backbone, state, classifier=expert.classifier_name,
                                    num_classes=expert.config["num_classes"],
                                    origin=str(directory / WEIGHTS_FILE))
    if document.get("info"):
        expert._info = dict(document["info"])
    return expert


def load_weights(expert: Expert, path: str | PathLike) -> None:
    """Copy into `expert` the weights of a plantkit expert folder or a checkpoint file.

    For `--init-from`: the source must have the same architecture and number of classes
    (a released Pl@ntNet-300K checkpoint for a 1,081-class expert, say).
    """
    path = Path(path)
    if path.is_dir():
        document = read_expert_json(path)
        config = document["config"]
        mine = expert.config
        if (config["arch"], config["num_classes"]) != (mine["arch"], mine["num_classes"]):
            raise PlantkitInputError(
                f"expert {path} is a {config['arch']} with {config['num_classes']:,} classes; "
                f"this one is a {mine['arch']} with {mine['num_classes']:,}"
            )
        path = check_expert_weights(path, document)
        state, _ = checkpoints.read_checkpoint(path)
    else:
        state, _ = checkpoints.read_checkpoint(path)
    checkpoints.load_backbone_state(expert.backbone, state, classifier=expert.classifier_name,
                                    num_classes=expert.config["num_classes"], origin=str(path))


def _cached_pretrained_file(spec: registry.ArchSpec, arch: str) -> Path:
    """The locally cached ImageNet weights of `spec`, or a PlantkitInputError saying what to do."""
    found = None
    if spec.source == "timm":
        import timm

        pretrained_cfg = timm.models.get_pretrained_cfg(spec.builder)
        cfg: dict[str, Any] = pretrained_cfg.to_dict() if pretrained_cfg is not None else {}
        if cfg.get("hf_hub_id"):
            from huggingface_hub import try_to_load_from_cache

            for filename in ("model.safetensors", "pytorch_model.bin"):
                hit = try_to_load_from_cache(cfg["hf_hub_id"], filename)
                if isinstance(hit, str):
                    found = Path(hit)
                    break
        url = cfg.get("url")
    else:
        import torchvision

        url = torchvision.models.get_model_weights(spec.builder).DEFAULT.url
    if found is None and url:
        candidate = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
        found = candidate if candidate.is_file() else None
    if found is None:
        raise PlantkitInputError(
            f"no ImageNet weights for '{arch}' in the local timm/torch hub cache and plantkit "
            "does not download; pass a weights file with --weights FILE (a state_dict or "
            "checkpoint), or train from scratch without --pretrained"
        )
    return found


def _pretrained_normalisation(spec: registry.ArchSpec):
    if spec.source == "timm":
        import timm

        cfg = timm.models.get_pretrained_cfg(spec.builder)
        if cfg is not None:
            return tuple(cfg.mean), tuple(cfg.std)
    return IMAGENET_MEAN, IMAGENET_STD


def _load_pretrained(expert: Expert, spec: registry.ArchSpec, path: Path) -> None:
    num_classes = expert.config["num_classes"]
    if spec.source == "timm":
        import timm

        # timm applies the model's own key conversions and head replacement for this file.
        donor = timm.create_model(spec.builder, pretrained=True, num_classes=num_classes,
                                  pretrained_cfg_overlay={"file": str(path)})
        expert.backbone.load_state_dict(donor.state_dict())
        return
    state, _ = checkpoints.read_checkpoint(path)
    checkpoints.load_backbone_state(expert.backbone, state, classifier=expert.classifier_name,
                                    num_classes=num_classes, origin=str(path), new_head=True)
