"""Transformers (timm ViT, DeiT, Swin, EVA; Hugging Face ViT) with random weights: the layer found; CAMERAS and
Grad-CAM against independent straightforward implementations (tokens reshaped by hand, per scale); the other
methods, the commands and the app run; the user's model is restored."""

import pytest
import timm
import torch
import torch.nn.functional as F

import cameras
from cameras.core.layers import inside_attention
from cameras.core.layouts import any_input_size

transformers = pytest.importorskip("transformers", reason="the hf extra is not installed: pip install 'cameras[hf]'")


def tiny_timm(name, **kw):
    torch.manual_seed(0)
    return timm.create_model(name, pretrained=False, num_classes=7, **kw).eval()


VIT = dict(img_size=64, depth=2, embed_dim=48, num_heads=2)
SWIN = dict(img_size=128, embed_dim=16, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1), window_size=4)


def tiny_hf_vit():
    torch.manual_seed(0)
    cfg = transformers.ViTConfig(image_size=64, patch_size=16, hidden_size=48, num_hidden_layers=2,
                                 num_attention_heads=2, intermediate_size=96, num_labels=7)
    return transformers.ViTForImageClassification(cfg).eval()


def reference(model, layer, x, sizes, target, prefix, patch, kwargs=None, channels_last=False):
    """Straightforward CAMERAS (or Grad-CAM with one size): for each size, resize the input, hook the layer,
    backpropagate the target logit, drop the prefix tokens and reshape the rest to the patch grid by hand,
    resize both to the input bilinearly, average over sizes, ReLU of the channel sum, min-max."""
    H, W = x.shape[2:]
    acts, grads = [], []
    store = {}
    h = layer.register_forward_hook(lambda _m, _i, o: store.__setitem__("a", o))
    try:
        for size in sizes:
            xt = x if tuple(size) == (H, W) else F.interpolate(x, size=size, mode="bicubic", align_corners=False)
            out = model(xt, **(kwargs or {}))
            logits = out.logits if hasattr(out, "logits") else out
            a = store["a"]
            (g,) = torch.autograd.grad(logits[0, target], a)
            gh, gw = size[0] // patch, size[1] // patch
            if channels_last:  # B×h×w×C
                a, g = a.permute(0, 3, 1, 2), g.permute(0, 3, 1, 2)
            else:  # B×N×C, N = prefix + gh·gw
                a = a[:, prefix:].transpose(1, 2).reshape(1, -1, gh, gw)
                g = g[:, prefix:].transpose(1, 2).reshape(1, -1, gh, gw)
            acts.append(F.interpolate(a.detach(), size=(H, W), mode="bilinear", align_corners=False))
            grads.append(F.interpolate(g, size=(H, W), mode="bilinear", align_corners=False))
    finally:
        h.remove()
    m = torch.relu((torch.stack(grads).mean(0) * torch.stack(acts).mean(0)).sum(1))
    return (m - m.amin()) / (m.amax() - m.amin())


CASES = {
    # name: (model factory, expected automatic layer, prefix tokens, patch, reference model factory, kwargs)
    "timm_vit": (lambda: tiny_timm("vit_tiny_patch16_224", **VIT), "blocks.1.norm1", 1, 16,
                 lambda: tiny_timm("vit_tiny_patch16_224", dynamic_img_size=True, **VIT), None),
    "timm_deit_distilled": (lambda: tiny_timm("deit_tiny_distilled_patch16_224", **VIT), "blocks.1.norm1", 2, 16,
                            lambda: tiny_timm("deit_tiny_distilled_patch16_224", dynamic_img_size=True, **VIT), None),
    "hf_vit": (tiny_hf_vit, None, 1, 16, tiny_hf_vit, {"interpolate_pos_encoding": True}),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("hw", [(64, 64), (64, 96)])
def test_token_models_match_the_straightforward_reference(case, hw):
    make, layer_name, prefix, patch, make_ref, kwargs = CASES[case]
    model, ref_model = make(), make_ref()
    ref_model.load_state_dict(model.state_dict())
    x = torch.randn(1, 3, *hw)
    cam = cameras.CAMERAS(model, scales=[64, 96, 128])
    res = cam(x, target=3)
    if layer_name is not None:
        assert res.layer == layer_name
    else:  # Hugging Face: the last block's first norm (transformers 5 names, or 4.x's encoder.layer)
        assert res.layer.endswith(("layers.1.layernorm_before", "layer.1.layernorm_before"))
    assert not inside_attention(model, res.layer)
    H, W = hw
    sizes = [(round(H * z / 64 / patch) * patch, round(W * z / 64 / patch) * patch) for z in (64, 96, 128)]
    assert res.extras["sizes"] == sizes and res.maps.shape == (1, H, W)
    ref_layer = dict(ref_model.named_modules())[res.layer]
    want = reference(ref_model, ref_layer, x, sizes, 3, prefix, patch, kwargs)
    assert (res.maps - want).abs().max().item() < 1e-5
    assert res.maps.std() > 0.05  # a real map
    # one scale: CAMERAS's fusion at the input's own size, by hand too
    one = cameras.CAMERAS(model, scales=[64])(x, target=3)
    assert (one.maps - reference(ref_model, ref_layer, x, [sizes[0]], 3, prefix, patch, kwargs)).abs().max() < 1e-5
    assert cameras.GradCAM(model)(x, target=3).layer == res.layer
    # the user's model is left as it was
    if hasattr(model, "dynamic_img_size"):
        assert model.dynamic_img_size is False and model.patch_embed.strict_img_size is True
    assert not model._forward_pre_hooks and not model._forward_hooks  # every hook removed


@pytest.mark.parametrize("hw", [(128, 128), (128, 160)])
def test_swin_channels_last_matches_the_reference(hw):
    model = tiny_timm("swin_tiny_patch4_window7_224", **SWIN)
    ref_model = tiny_timm("swin_tiny_patch4_window7_224", dynamic_img_size=True, **SWIN)
    ref_model.load_state_dict(model.state_dict())
    x = torch.randn(1, 3, *hw)
    res = cameras.CAMERAS(model, scales=[128, 192])(x, target=2)
    assert res.layer == "norm" and res.extras["sizes"] == [hw, (192, {128: 192, 160: 256}[hw[1]])]  # 240 → 256 (×32)
    want = reference(ref_model, ref_model.norm, x, res.extras["sizes"], 2, 0, 32, channels_last=True)
    assert (res.maps - want).abs().max().item() < 1e-5 and res.maps.std() > 0.05
    assert model.patch_embed.strict_img_size is True


def test_gradcam_on_tokens_equals_its_definition():
    """Grad-CAM on a ViT: ReLU(Σ_k mean_positions(∂y/∂A_k) · A_k) over the patch tokens, by hand."""
    model = tiny_timm("vit_tiny_patch16_224", **VIT)
    x = torch.randn(1, 3, 64, 96)
    res = cameras.GradCAM(model)(x, target=4)
    store = {}
    layer = dict(model.named_modules())[res.layer]
    h = layer.register_forward_hook(lambda _m, _i, o: store.__setitem__("a", o))
    with any_input_size(model):
        out = model(x)
    h.remove()
    (g,) = torch.autograd.grad(out[0, 4], store["a"])
    a = store["a"][:, 1:].detach().transpose(1, 2).reshape(1, -1, 4, 6)
    g = g[:, 1:].transpose(1, 2).reshape(1, -1, 4, 6)
    m = torch.relu((g.mean((2, 3), keepdim=True) * a).sum(1, keepdim=True))
    m = F.interpolate(m, size=(64, 96), mode="bilinear", align_corners=False)[:, 0]
    m = (m - m.amin()) / (m.amax() - m.amin())
    assert (res.maps - m).abs().max().item() < 1e-5


@pytest.mark.parametrize("method", ["gradient", "normgrad", "rise", "extremal"])
def test_every_method_runs_on_a_vit_at_a_non_square_size(method):
    model = tiny_timm("vit_tiny_patch16_224", **VIT)
    opts = {"rise": {"n_masks": 16, "batch_size": 8}, "extremal": {"iterations": 3}}.get(method, {})
    res = cameras.build_method(method, model, **opts)(torch.randn(1, 3, 64, 96), target=1)
    assert res.maps.shape == (1, 64, 96) and torch.isfinite(res.maps).all()


def test_the_probe_runs_at_the_input_size_and_models_of_one_size_get_a_clear_error():
    vit112 = tiny_timm("vit_tiny_patch16_224", img_size=112, depth=2, embed_dim=48, num_heads=2)
    assert cameras.GradCAM(vit112)(torch.randn(1, 3, 112, 112)).layer == "blocks.1.norm1"
    with pytest.raises(cameras.InputError, match=r"refused a 112×100 input .* multiples of 16 px; resize it "
                                                 r"\(e.g. to 112×96\)"):
        cameras.GradCAM(vit112)(torch.randn(1, 3, 112, 100))


def save_hf_folder(folder):
    model = tiny_hf_vit()
    model.config.id2label = {i: f"shape{i}" for i in range(7)}
    model.config.label2id = {v: k for k, v in model.config.id2label.items()}
    model.save_pretrained(folder)
    transformers.ViTImageProcessor(size={"height": 64, "width": 64}, image_mean=[0.4, 0.4, 0.4],
                                   image_std=[0.3, 0.3, 0.3]).save_pretrained(folder)
    return model


def test_hf_folder_loads_offline_with_names_and_preprocessing(tmp_path):
    model = save_hf_folder(tmp_path / "vit")
    b = cameras.load_model(f"hf:{tmp_path / 'vit'}")
    assert b.input_size == 64 and b.mean == (0.4, 0.4, 0.4) and b.std == (0.3, 0.3, 0.3)
    assert b.class_names[3] == "shape3" and b.num_classes == 7
    x = torch.randn(1, 3, 64, 96)
    with any_input_size(b.model):
        logits = b.model(x)
    assert isinstance(logits, torch.Tensor) and logits.shape == (1, 7)
    with torch.no_grad():
        assert torch.allclose(logits, model(x, interpolate_pos_encoding=True).logits, atol=1e-6)
    from PIL import Image

    assert tuple(b.prepare(Image.new("RGB", (100, 70))).shape) == (1, 3, 64, 96)  # sides: multiples of 16
    with pytest.raises(cameras.ModelError, match="no config.json there"):
        cameras.load_model(f"hf:{tmp_path / 'missing'}")


def test_commands_run_on_transformers(tmp_path, sample_dir):
    """explain on a Hugging Face folder and compare on a timm ViT (random weights), non-square photos."""
    import json

    from click.testing import CliRunner

    from cameras.cli import main

    save_hf_folder(tmp_path / "vit")
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["explain", str(sample_dir / "chelsea.jpg"), "--model", f"hf:{tmp_path / 'vit'}",
                                  "--scales", "64,96,128", "--out", str(out), "--quiet"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    meta = json.loads((out / "chelsea.json").read_text())
    (exp,) = meta["explanations"]
    assert exp["name"].startswith("shape") and exp["png"].startswith("chelsea.cameras.")
    assert cameras.load_image(out / exp["png"]).size[0] > 0
    r = CliRunner().invoke(main, ["compare", str(sample_dir / "coffee.png"), "--model", "timm:vit_tiny_patch16_224",
                                  "--weights", "random", "--methods", "gradcam,cameras", "--set",
                                  "cameras.scales=224,320", "--out", str(tmp_path / "c.png")], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    entry = json.loads((tmp_path / "c.json").read_text())["models"][0]["methods"]
    assert entry["cameras"]["layer"] == entry["gradcam"]["layer"] == "blocks.11.norm1"


def test_the_app_explains_a_timm_vit(sample_dir):
    from cameras.app import Explorer, check_upload

    name = "timm:vit_tiny_patch16_224"
    # random weights: with some draws (seed 0 among them) every location's activation·gradient sum on this
    # photo is negative, so CAMERAS's ReLU leaves an all-zero map; seed 1 gives maps with structure
    torch.manual_seed(1)
    ex = Explorer([name], weights={name: "random"})
    img = check_upload(sample_dir / "chelsea.jpg")
    top = ex.top_classes(img, name, 2)
    exps = list(ex.explain(img, name, ["cameras", "gradcam"], [top[0][0]], [224, 320]))
    assert [e.method for e in exps] == ["gradcam", "cameras"]
    assert all(e.saliency.shape == (300, 451) and e.saliency.std() > 0.01 for e in exps)
    # the app's map is the library's, on the bundle's input (224×336: sides rounded to multiples of 16)
    b = ex.bundle(name)
    x = b.prepare(img)
    assert tuple(x.shape[2:]) == (224, 336)
    want = cameras.CAMERAS(b.model, scales=[224, 320])(x).maps
    want = cameras.resize_maps(want, (300, 451))[0].clamp(0, 1).numpy()
    assert abs(exps[1].saliency - want).max() < 1e-5


def test_rope_models_of_one_size_get_a_clear_error_and_work_when_dynamic():
    fixed = tiny_timm("eva02_tiny_patch14_224")
    x = torch.randn(1, 3, 224, 224)
    with pytest.raises(cameras.InputError,
                       match="Eva cannot take this input size .* scales=\\[224\\].*--square --scales 224"):
        cameras.CAMERAS(fixed, scales=[224, 320])(x, target=1)
    dynamic = tiny_timm("eva02_tiny_patch14_224", dynamic_img_size=True)
    res = cameras.CAMERAS(dynamic, scales=[224, 320])(x, target=1)
    assert res.extras["sizes"] == [(224, 224), (322, 322)] and res.maps.std() > 0.01


def hf_models():
    torch.manual_seed(0)
    deit = transformers.DeiTForImageClassificationWithTeacher(transformers.DeiTConfig(
        image_size=64, patch_size=16, hidden_size=48, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=96, num_labels=7)).eval()
    swin = transformers.SwinForImageClassification(transformers.SwinConfig(
        image_size=64, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[1, 1], window_size=4, num_labels=7)).eval()
    return {"deit": (deit, 2, 16), "swin": (swin, 0, 8)}


@pytest.mark.parametrize("name", ["deit", "swin"])
def test_hugging_face_deit_and_swin_match_the_reference(name):
    """DeiT: class and distillation tokens (2); Swin: patch tokens only, grid 1/8 of the input after 2 stages."""
    model, prefix, patch = hf_models()[name]
    x = torch.randn(1, 3, 64, 96)
    res = cameras.CAMERAS(model, scales=[64, 96, 128])(x, target=5)
    assert not inside_attention(model, res.layer)
    assert res.layer.endswith("layernorm_before" if name == "deit" else "layernorm")
    want = reference(model, dict(model.named_modules())[res.layer], x, res.extras["sizes"], 5, prefix, patch,
                     {"interpolate_pos_encoding": True} if name == "deit" else None)
    assert (res.maps - want).abs().max().item() < 1e-5 and res.maps.std() > 0.05
    assert not model._forward_pre_hooks


def test_hugging_face_convnext_is_a_feature_map_model():
    torch.manual_seed(0)
    model = transformers.ConvNextForImageClassification(transformers.ConvNextConfig(
        num_stages=2, hidden_sizes=[8, 16], depths=[1, 1], num_labels=7)).eval()
    res = cameras.GradCAM(model)(torch.randn(1, 3, 64, 96), target=2)
    assert res.layer == "convnext.encoder.stages.1" and res.maps.std() > 0.01


def test_beit_of_one_size_explains_at_that_size():
    model = tiny_timm("beit_base_patch16_224", img_size=64, depth=2, embed_dim=48, num_heads=2)
    x = torch.randn(1, 3, 64, 64)
    res = cameras.GradCAM(model)(x, target=1)
    assert res.layer == "norm" and res.maps.std() > 0.01  # average pooling: every patch token reaches the head
    assert cameras.CAMERAS(model, scales=[64])(x, target=1).maps.std() > 0.01
    with pytest.raises(cameras.InputError, match=r"Beit refused an input size .* scales=\[64\]"):
        cameras.CAMERAS(model, scales=[64, 96])(x, target=1)


def test_hf_crop_size_is_the_input_size_and_top1_runs_at_any_size(tmp_path):
    """A DeiT-style processor resizes to 256 and crops 224: the model sees the crop. top1 runs a transformer at the
    image's own size, as the methods do."""
    from PIL import Image

    model = tiny_hf_vit()
    model.save_pretrained(tmp_path / "deit")
    transformers.ViTImageProcessor(size={"height": 80, "width": 80}, do_center_crop=True,
                                   crop_size={"height": 64, "width": 64}).save_pretrained(tmp_path / "deit")
    import json

    proc = json.loads((tmp_path / "deit" / "preprocessor_config.json").read_text())
    proc["do_center_crop"], proc["crop_size"] = True, {"height": 64, "width": 64}
    (tmp_path / "deit" / "preprocessor_config.json").write_text(json.dumps(proc))
    b = cameras.load_model(f"hf:{tmp_path / 'deit'}")
    assert b.input_size == 64
    assert 0 <= b.top1(Image.new("RGB", (100, 70))) < b.num_classes  # a 64×96 input, not the 64×64 of the config
