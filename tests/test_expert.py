"""Experts: Keras call semantics, features, save/load, config, size and cost, bad input."""

from __future__ import annotations

import json

import pytest
import timm
import torch
import torchvision

from plantkit.errors import PlantkitInputError
from plantkit.models import registry
from plantkit.models.expert import (
    Expert,
    create_expert,
    load_expert,
    load_weights,
    read_expert_json,
    save_expert,
)
from plantkit.models.flops import count_gflops, count_params


def _images(n=4, size=64, seed=0):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _batchnorm_buffers(module):
    return {k: v.clone() for k, v in module.state_dict().items() if "running" in k}


def _same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_eval_call_keeps_batchnorm_statistics_and_turns_dropout_off():
    # mobilenet_v3_small has both BatchNorm and a Dropout(0.2) in its head.
    expert = create_expert("mobilenet_v3_small", 6, input_size=64)
    # Keras tracks each backbone parameter once, as a variable over the same tensor.
    assert len(expert.trainable_weights) == len(list(expert.backbone.parameters()))
    x = _images()
    before = _batchnorm_buffers(expert.backbone)

    first = expert(x, training=False)
    second = expert(x, training=False)
    assert torch.equal(first, second)
    assert first.dtype == torch.float32 and first.shape == (4, 6)
    assert _same(before, _batchnorm_buffers(expert.backbone))
    assert not expert.backbone.training
    # No `training` means inference, not the wrapper's train-mode default.
    assert torch.equal(expert(x), first)
    assert _same(before, _batchnorm_buffers(expert.backbone))

    torch.manual_seed(1)
    trained_a = expert(x, training=True)
    torch.manual_seed(2)
    trained_b = expert(x, training=True)
    assert expert.backbone.training
    assert not _same(before, _batchnorm_buffers(expert.backbone))
    assert not torch.allclose(trained_a, trained_b)  # dropout draws differ in training

    logits, features = expert.predict_batch(x)
    assert features is None and not expert.backbone.training
    assert torch.equal(logits, expert(x, training=False))


@pytest.mark.parametrize(
    "arch, source", [("test_resnet", "timm"), ("mobilenet_v3_small", "torchvision"),
                     ("squeezenet1_1", "torchvision")]
)
def test_features_are_what_the_classifier_sees(arch, source):
    expert = create_expert(arch, 5, source=source, input_size=64)
    x = _images()
    logits, features = expert.predict_batch(x, features=True)
    assert torch.allclose(logits, expert.predict_batch(x)[0], atol=1e-6)
    assert features.shape == (4, expert.info["feature_dim"]) and features.dtype == torch.float32
    head = dict(expert.backbone.named_modules())[expert.classifier_name]
    if isinstance(head, torch.nn.Linear):
        with torch.inference_mode():
            assert torch.allclose(head(features), logits, atol=1e-5)
    else:  # squeezenet: 1x1 conv, ReLU, average pool; features are the pooled conv input
        assert head.in_channels == features.shape[1] == 512


def test_save_load_gives_identical_eval_logits_including_batchnorm_statistics(tmp_path):
    expert = create_expert("test_resnet", 7, input_size=64)
    fresh = _batchnorm_buffers(expert.backbone)
    for seed in range(3):
        expert(_images(seed=seed) * 2 + 1, training=True)
    assert not _same(fresh, _batchnorm_buffers(expert.backbone))
    x = _images(seed=10)
    expected = expert.predict_batch(x)[0]

    save_expert(expert, tmp_path / "e", class_ids=[f"c{i}" for i in range(7)], fingerprint="f")
    loaded = load_expert(tmp_path / "e")
    assert torch.equal(loaded.predict_batch(x)[0], expected)
    assert loaded.config == expert.config
    assert loaded.info == expert.info
    document = read_expert_json(tmp_path / "e")
    assert document["class_ids"][3] == "c3" and document["fingerprint"] == "f"

    # Keras's own format keeps the whole state_dict too.
    import keras  # after plantkit, which selects the torch backend

    expert.save(tmp_path / "e.keras")
    reloaded = keras.saving.load_model(tmp_path / "e.keras")
    assert torch.equal(reloaded.predict_batch(x)[0], expected)


def test_load_weights_takes_an_expert_folder_of_the_same_shape_only(tmp_path):
    source = create_expert("test_resnet", 4, input_size=64)
    source(_images(seed=3), training=True)  # BatchNorm statistics a fresh model lacks
    save_expert(source, tmp_path / "source")
    target = create_expert("test_resnet", 4, input_size=64)
    load_weights(target, tmp_path / "source")
    x = _images()
    assert torch.equal(target.predict_batch(x)[0], source.predict_batch(x)[0])
    with pytest.raises(PlantkitInputError, match="4 classes; this one is a test_resnet with 5"):
        load_weights(create_expert("test_resnet", 5, input_size=64), tmp_path / "source")


def test_amp_runs_the_backbone_under_bfloat16_autocast_and_returns_float32_logits():
    torch.manual_seed(0)
    plain = create_expert("test_resnet", 3, input_size=64)
    amp = create_expert("test_resnet", 3, input_size=64, amp=True)
    amp.backbone.load_state_dict(plain.backbone.state_dict())
    x = _images()
    seen = []
    for expert in (plain, amp):
        expert.backbone.get_submodule(expert.classifier_name).register_forward_hook(
            lambda _module, _args, output: seen.append(output.dtype))
    reference = plain.predict_batch(x)[0]
    assert seen == [torch.float32]
    scale = reference.abs().max().item()
    for logits, features in (amp.predict_batch(x), amp.predict_batch(x, features=True)):
        assert logits.dtype == torch.float32
        assert features is None or features.dtype == torch.float32
        assert not torch.equal(logits, reference)  # bfloat16's rounding shows...
        torch.testing.assert_close(logits, reference, rtol=0.05, atol=0.05 * scale)  # ...only
    assert seen == [torch.float32, torch.bfloat16, torch.bfloat16]  # the head ran in bfloat16
    assert amp.config["amp"] and not plain.config["amp"]


def test_saved_weights_load_into_the_plain_library_model(tmp_path):
    expert = create_expert("test_resnet", 3, input_size=64)
    save_expert(expert, tmp_path)
    plain = timm.create_model("test_resnet", num_classes=3)
    plain.load_state_dict(torch.load(tmp_path / "weights.pt", weights_only=True))
    x = _images()
    with torch.no_grad():
        assert torch.equal(plain.eval()(x), expert.predict_batch(x)[0])


def _plain(value) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, (str, int, float, bool))


def test_config_round_trips_through_json_without_pickling():
    import keras  # after plantkit, which selects the torch backend

    expert = create_expert("squeezenet1_1", 4, input_size=96, mean=(0.5, 0.4, 0.3),
                           std=(0.2, 0.2, 0.2))
    assert expert.config == {
        "arch": "squeezenet1_1", "num_classes": 4, "source": "torchvision", "input_size": 96,
        "mean": [0.5, 0.4, 0.3], "std": [0.2, 0.2, 0.2], "amp": False,
    }
    serialized = json.loads(json.dumps(keras.saving.serialize_keras_object(expert)))
    assert _plain(serialized)
    assert len(json.dumps(serialized)) < 2000  # no base64 torch module inside
    # Safe mode (the default) refuses any pickled torch module, so this proves there is none.
    rebuilt = keras.saving.deserialize_keras_object(serialized, safe_mode=True)
    assert isinstance(rebuilt, Expert) and rebuilt.config == expert.config
    assert count_params(rebuilt.backbone) == count_params(expert.backbone)


def test_flops_and_params_match_a_hand_count():
    channels, classes, size = 8, 5, 16
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, channels, 3, padding=1), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(channels, classes),
    )
    # A multiply-add is 2 FLOPs; biases, activations and pooling are not counted.
    conv = 2 * (3 * 3 * 3) * channels * size * size
    linear = 2 * channels * classes
    assert count_gflops(model, size) * 1e9 == pytest.approx(conv + linear)
    assert count_params(model) == (3 * 3 * 3 * channels + channels) + (channels * classes + classes)
    model.train()
    count_gflops(model, size)
    assert model.training  # counting does not leave the model in eval mode


class _ScaledInput(torch.nn.Module):
    """A plain tensor attribute (not a buffer) that a shapes-only meta pass cannot move."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.scale = inner, torch.tensor(2.0)

    def forward(self, x):
        return self.inner(x * self.scale)


def test_flops_fall_back_to_a_real_pass_when_the_meta_pass_fails():
    inner = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 8 * 8, 2))
    expected = 2 * 3 * 4 * 8 * 8 + 2 * 4 * 8 * 8 * 2
    assert count_gflops(_ScaledInput(inner), 8) * 1e9 == pytest.approx(expected)


@pytest.mark.parametrize("source", ["torchvision", "timm"])
def test_expert_size_and_cost_agree_with_torchvision_published_numbers(source):
    meta = torchvision.models.get_model_weights("resnet18").DEFAULT.meta
    info = create_expert("resnet18", 1000, source=source, input_size=224).info
    assert info["params"] == meta["num_params"]
    # torchvision publishes multiply-adds (1.814 G); FlopCounterMode counts 2 per multiply-add.
    assert info["gflops"] / 2 == pytest.approx(meta["_ops"], rel=0.01)
    assert info["feature_dim"] == 512


def test_unknown_architecture_suggests_close_names():
    with pytest.raises(PlantkitInputError, match="unknown architecture 'resnet81'.*resnet18"):
        create_expert("resnet81", 3)
    with pytest.raises(PlantkitInputError, match="in torchvision.*resnet18"):
        create_expert("resnet81", 3, source="torchvision")
    with pytest.raises(PlantkitInputError, match="unknown source"):
        create_expert("resnet18", 3, source="keras")


def test_plantnet_names_build_the_authors_models():
    assert registry.resolve_arch("squeezenet").builder == "squeezenet1_0"
    assert registry.resolve_arch("shufflenet").builder == "shufflenet_v2_x1_0"
    # densenet121 exists in timm too, but the released checkpoint is torchvision's.
    assert registry.resolve_arch("densenet121").source == "torchvision"
    assert registry.resolve_arch("densenet121", "timm").source == "timm"
    assert registry.resolve_arch("efficientnet_b0").source == "timm"
    assert registry.resolve_arch("convnext_atto").source == "timm"
    assert registry.resolve_arch("regnet_x_400mf").source == "torchvision"


def test_weights_file_keeps_the_trunk_and_replaces_another_class_count_head(tmp_path):
    donor = timm.create_model("test_resnet", num_classes=1000)
    torch.save({"state_dict": {f"module.{k}": v for k, v in donor.state_dict().items()}},
               tmp_path / "imagenet.pth")
    expert = create_expert("test_resnet", 7, weights=tmp_path / "imagenet.pth", input_size=64)
    own, given = expert.backbone.state_dict(), donor.state_dict()
    assert own["fc.weight"].shape == (7, 96)
    assert all(torch.equal(own[k], given[k]) for k in own if not k.startswith("fc."))


def _fake_hf_cache(cache, repo_id, state):
    from safetensors.torch import save_file

    folder = cache / f"models--{repo_id.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("0" * 40)
    snapshot = folder / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in state.items()}, snapshot / "model.safetensors")


def test_pretrained_uses_only_the_local_cache(tmp_path, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch"))
    with pytest.raises(PlantkitInputError, match="no ImageNet weights.*--weights FILE"):
        create_expert("test_resnet", 5, pretrained=True)
    with pytest.raises(PlantkitInputError, match="no ImageNet weights.*--weights FILE"):
        create_expert("mobilenet_v3_small", 5, pretrained=True)

    donor = timm.create_model("test_resnet", num_classes=1000)
    repo_id = timm.models.get_pretrained_cfg("test_resnet").hf_hub_id
    _fake_hf_cache(tmp_path / "hf", repo_id, donor.state_dict())
    expert = create_expert("test_resnet", 5, pretrained=True, input_size=64)
    own, given = expert.backbone.state_dict(), donor.state_dict()
    assert own["fc.weight"].shape[0] == 5
    assert all(torch.equal(own[k], given[k]) for k in own if not k.startswith("fc."))
    assert expert.config["mean"] == list(timm.models.get_pretrained_cfg("test_resnet").mean)
