"""Fast paths give the maps of the reference path: channels-last CAMERAS against NCHW, state restored."""

import contextlib

import pytest
import torch
import torchvision

import cameras
from cameras.core.memory import channels_last, fast_bf16, has_convolutions, prefers_channels_last


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=7).eval()


def test_channels_last_cameras_equals_nchw_and_restores_the_model(resnet):
    x = torch.randn(2, 3, 64, 80, generator=torch.Generator().manual_seed(1))
    before = {n: (p.data_ptr(), p.is_contiguous()) for n, p in resnet.named_parameters()}
    ref = cameras.CAMERAS(resnet, scales=[64, 96, 128], channels_last=False)(x, target=[1, 2]).maps
    fast = cameras.CAMERAS(resnet, scales=[64, 96, 128])(x, target=[1, 2]).maps  # "auto": channels-last on a CPU
    forced = cameras.CAMERAS(resnet, scales=[64, 96, 128], channels_last=True)(x, target=[1, 2]).maps
    assert (fast - ref).abs().max() < 1e-5 and (forced - ref).abs().max() < 1e-5
    assert fast.is_contiguous()
    assert {n: (p.data_ptr(), p.is_contiguous()) for n, p in resnet.named_parameters()} == before
    # also with the top-1 rule and explain_targets
    a = cameras.CAMERAS(resnet, scales=[64, 96], channels_last=False).explain_targets(x, [None, 3])
    b = cameras.CAMERAS(resnet, scales=[64, 96]).explain_targets(x, [None, 3])
    assert all((p.maps - q.maps).abs().max() < 1e-5 for p, q in zip(a, b))
    with pytest.raises(cameras.InputError, match="channels_last"):
        cameras.CAMERAS(resnet, channels_last="yes")


def test_channels_last_context_restores_layouts_and_values():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Conv2d(4, 2, 1))
    net[2].weight.data = net[2].weight.data.contiguous(memory_format=torch.channels_last)  # already NHWC: left alone
    w0 = net[0].weight.detach().clone()
    ptr2 = net[2].weight.data_ptr()
    with pytest.raises(RuntimeError), channels_last(net):
        assert net[0].weight.is_contiguous(memory_format=torch.channels_last)
        raise RuntimeError("boom")
    assert net[0].weight.is_contiguous() and torch.equal(net[0].weight, w0)
    assert net[2].weight.data_ptr() == ptr2
    assert has_convolutions(net) and not has_convolutions(torch.nn.Linear(2, 2))
    assert prefers_channels_last(net, torch.device("cpu")) and not prefers_channels_last(net, torch.device("meta"))


def test_bf16_precision_runs_below_the_layer_in_bf16_and_stays_close(resnet):
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    seen = {}
    h1 = resnet.layer3.register_forward_hook(lambda m, i, o: seen.__setitem__("below", o.dtype))
    h2 = resnet.fc.register_forward_pre_hook(lambda m, i: seen.__setitem__("above", i[0].dtype))
    try:
        ref = cameras.CAMERAS(resnet, scales=[64, 96], channels_last=False)(x, target=1)
        emulated = not fast_bf16(torch.device("cpu"))
        with pytest.warns(RuntimeWarning, match="emulated") if emulated else contextlib.nullcontext():
            low = cameras.CAMERAS(resnet, scales=[64, 96], precision="bf16")(x, target=1)
    finally:
        h1.remove()
        h2.remove()
    assert seen == {"below": torch.bfloat16, "above": torch.float32}
    assert low.maps.dtype == torch.float32 and low.probs.dtype == torch.float32
    r = torch.corrcoef(torch.stack([low.maps.flatten(), ref.maps.flatten()]))[0, 1]
    assert 0.9 < r < 1.0  # close, not equal: bf16 keeps 8 bits of mantissa
    assert all(p.dtype == torch.float32 for p in resnet.parameters())
    assert all(b.dtype in (torch.float32, torch.int64) for b in resnet.buffers())
    with pytest.raises(cameras.InputError, match="precision"):
        cameras.CAMERAS(resnet, precision="fp16")
    with pytest.raises(cameras.InputError, match="not both"):
        cameras.CAMERAS(resnet, precision="bf16", amp="bf16")


def tiny_bn_net():
    torch.manual_seed(3)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                              torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 5))
    for bn in (net[1], net[4]):  # non-trivial statistics, so folding them into the convolutions matters
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
    return net.eval()


def test_compiled_cameras_equals_eager_follows_weight_changes_and_restores_the_model():
    from cameras.core.compiled import compiled_roots

    net = tiny_bn_net()
    x = torch.randn(2, 3, 24, 32, generator=torch.Generator().manual_seed(4))
    eager = cameras.CAMERAS(net, layer="4", scales=[24, 36], channels_last=False)
    fast = cameras.CAMERAS(net, layer="4", scales=[24, 36], compile=True)
    ptrs = [p.data_ptr() for p in net.parameters()]
    got = fast(x, target=[1, 2])
    assert (got.maps - eager(x, target=[1, 2]).maps).abs().max() < 1e-5
    assert got.maps.abs().max() > 0
    below = fast._compiled
    assert below.roots == [net[0], net[1], net[3], net[4]]  # up to the layer; the head stays eager
    assert compiled_roots(net, net[4], {net[0], net[1], net[3], net[4]}) == below.roots
    assert not any("forward" in vars(m) for m in net.modules())  # the compiled forwards are swapped out again
    assert [p.data_ptr() for p in net.parameters()] == ptrs
    # the same weights: no new compilation; changed weights: compiled afresh, maps follow them
    fast(x, target=[1, 2])
    assert below.compilations == 1
    with torch.no_grad():
        net[3].weight.mul_(-1.0)
    changed = eager(x, target=[1, 2]).maps
    assert (changed - got.maps).abs().max() > 0.05
    assert (fast(x, target=[1, 2]).maps - changed).abs().max() < 1e-5
    assert below.compilations == 2
    # restored also when the block raises
    with pytest.raises(RuntimeError, match="boom"), below.active():
        assert "forward" in vars(net[0])
        raise RuntimeError("boom")
    assert "forward" not in vars(net[0])
    assert "compile" not in fast.result_options()  # it does not change the maps: runs with and without it resume
    for bad in ({"compile": "yes"}, {"compile": True, "amp": "bf16"}):
        with pytest.raises(cameras.InputError, match="compile"):
            cameras.CAMERAS(net, layer="4", **bad)


def test_held_copies_are_reused_and_remade_when_weights_change_even_through_data():
    net = tiny_bn_net()
    x = torch.randn(1, 3, 24, 24, generator=torch.Generator().manual_seed(5))
    auto = cameras.CAMERAS(net, layer="4", scales=[24, 36], channels_last=True)
    nchw = cameras.CAMERAS(net, layer="4", scales=[24, 36], channels_last=False)
    first = auto(x, target=1).maps
    auto(x, target=1)
    assert auto.held_layout.conversions == 1  # the channels-last weights were kept for the second call
    net[0].weight.data.mul_(-1.0)  # an edit that bumps no version counter
    changed = nchw(x, target=1).maps
    assert (changed - first).abs().max() > 0.05
    assert (auto(x, target=1).maps - changed).abs().max() < 1e-5 and auto.held_layout.conversions == 2
    assert all(p.is_contiguous() for p in net.parameters())  # the model's own layout is back


def test_bf16_compiled_keeps_one_compilation_and_stays_close():
    net = tiny_bn_net()
    x = torch.randn(1, 3, 24, 24, generator=torch.Generator().manual_seed(6))
    ref = cameras.CAMERAS(net, layer="4", scales=[24], channels_last=False)(x, target=1).maps
    with pytest.warns(RuntimeWarning, match="emulated") if not fast_bf16(torch.device("cpu")) \
            else contextlib.nullcontext():
        low = cameras.CAMERAS(net, layer="4", scales=[24], precision="bf16", compile=True)
    maps = [low(x, target=1).maps for _ in range(2)]
    assert low._compiled.compilations == 1 and low._held_low.conversions == 1  # the bf16 copies are the same tensors
    assert torch.equal(maps[0], maps[1])
    r = torch.corrcoef(torch.stack([maps[0].flatten(), ref.flatten()]))[0, 1]
    assert r > 0.99
    assert all(p.dtype == torch.float32 for p in net.parameters())
    # an edit of the fp32 weights makes new bf16 copies (new storage), so the compiled code follows
    # it although the copies are fingerprinted by storage alone
    net[0].weight.data.mul_(-1.0)
    changed = cameras.CAMERAS(net, layer="4", scales=[24], channels_last=False)(x, target=1).maps
    assert (changed - ref).abs().max() > 0.05
    got = low(x, target=1).maps
    assert low._compiled.compilations == 2 and low._held_low.conversions == 2
    assert torch.corrcoef(torch.stack([got.flatten(), changed.flatten()]))[0, 1] > 0.99


def test_fingerprint_reads_no_sums_of_held_copies():
    from cameras.core.memory import HeldCopies, weights_fingerprint

    src, held = [torch.ones(3), torch.ones(2)], HeldCopies()
    made = held.copies(src, lambda d: d.to(torch.bfloat16))
    print_ = weights_fingerprint([made[0], src[1]], held)
    from cameras.core.memory import _weighted_sum

    assert print_[0][-1] is None and print_[1][-1] == float(_weighted_sum(src[1]))
    assert weights_fingerprint([made[0]])[0][-1] == float(_weighted_sum(made[0]))  # without `held` all are read


def test_fingerprint_sees_swaps_and_edits_through_data_and_spans_devices():
    from cameras.core.memory import _weighted_sum, weights_fingerprint

    # a weight-like tensor longer than the weights' period (65,536)
    w = torch.randn(200_000, generator=torch.Generator().manual_seed(1)) * 0.05
    count = torch.ones(3, dtype=torch.int64)  # an integer buffer (num_batches_tracked) is read too
    ref = weights_fingerprint([w, count])

    def swap(d):
        d[[3, 70_000]] = d[[70_000, 3]].clone()

    def opposite(d):  # +1e-3 and -1e-3: the plain sum stays
        d[10] += 1e-3
        d[199_999] -= 1e-3

    for edit in (swap, opposite, lambda d: d.neg_()):
        v = w.clone()
        edit(v.data)
        assert weights_fingerprint([v, count])[0][-1] != ref[0][-1]
    assert weights_fingerprint([w, count]) == ref  # unchanged: the same
    # the weighted sum against a straightforward one
    g = torch.Generator().manual_seed(0)
    p = torch.rand(1 << 16, generator=g) + 0.5
    want = sum(float(w[i]) * float(p[i % (1 << 16)]) for i in range(0, 200_000, 997))
    sub = torch.zeros_like(w)
    sub[::997] = w[::997]
    assert abs(float(_weighted_sum(sub)) - want) <= 1e-5 * sum(abs(float(v)) for v in w[::997])
    if torch.cuda.is_available():  # a model split over devices: sums per device
        assert len(weights_fingerprint([w, w.cuda()])) == 2


@pytest.mark.parametrize("name", ["gradcam", "gradcampp", "xgradcam", "hirescam", "layercam"])
def test_gradient_cams_run_channels_last_and_folded_with_the_reference_maps(name):
    from tests.test_folding import with_statistics

    torch.manual_seed(0)
    net = with_statistics(torchvision.models.resnet18(num_classes=7))
    x = torch.randn(2, 3, 64, 80, generator=torch.Generator().manual_seed(4))
    before = {n: (p.data_ptr(), p.is_contiguous(), p.detach().clone())
              for n, p in [*net.named_parameters(), *net.named_buffers()]}
    ref = cameras.get_method(name, net, channels_last=False)  # the NCHW reference path, nothing folded
    auto = cameras.get_method(name, net)  # "auto": channels-last on a CPU
    folded = cameras.get_method(name, net, fold_batchnorm=True)
    nchw_folded = cameras.get_method(name, net, channels_last=False, fold_batchnorm=True)
    want = ref(x, target=[1, 2])
    got = [m(x, target=[1, 2]) for m in (auto, folded, nchw_folded)]  # the first folded calls also find the pairs
    seen = []
    hook = net.layer1.register_forward_hook(
        lambda m, i, o: seen.append(o.is_contiguous(memory_format=torch.channels_last)))
    try:
        for m in (ref, auto, folded, nchw_folded):
            m(x, target=[1, 2])
    finally:
        hook.remove()
    assert seen == [False, True, True, False]  # the passes really ran in the layout asked for
    assert want.maps.abs().max() > 0 and ref.channels_last_now is False and auto.channels_last_now is True
    for r in got:
        assert (r.maps - want.maps).abs().max() < 1e-5
        assert (r.extras["low_res"] - want.extras["low_res"]).abs().max() <= 1e-5 * want.extras["low_res"].abs().max()
        assert torch.equal(r.target.ids, want.target.ids)
    assert auto.folded is None and len(folded.folded.pairs) == 20 and len(nchw_folded.folded.pairs) == 20
    # the model as it was: storage, layout, values, no swapped forwards
    after = dict([*net.named_parameters(), *net.named_buffers()])
    assert all(after[n].data_ptr() == p and after[n].is_contiguous() == c and torch.equal(after[n], v)
               for n, (p, c, v) in before.items())
    assert not any("forward" in vars(m) for m in net.modules())
    # options that do not change the maps: recorded, but not among the settings a resumed run must share
    assert folded.options["fold_batchnorm"] is True and "fold_batchnorm" not in folded.result_options()
    assert "channels_last" not in auto.result_options()
    with pytest.raises(cameras.InputError, match="channels_last"):
        cameras.get_method(name, net, channels_last="nhwc")
    with pytest.raises(cameras.InputError, match="fold_batchnorm"):
        cameras.get_method(name, net, fold_batchnorm=2)


def test_gradient_cam_keeps_copies_between_calls_and_follows_weight_edits():
    from tests.test_folding import with_statistics

    torch.manual_seed(1)
    net = with_statistics(torchvision.models.resnet18(num_classes=5))
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    fast = cameras.GradCAM(net, fold_batchnorm=True)
    ref = cameras.GradCAM(net, channels_last=False)
    fast(x, target=1)
    fast(x, target=1)
    assert fast.held_layout.conversions == 1 and fast.folded.folds == 1  # made once, reused
    net.layer2[1].bn2.running_var.data.mul_(3.0)  # through .data: no version counter moves
    net.layer3[0].conv2.weight.data.neg_()
    want = ref(x, target=1).maps
    assert (fast(x, target=1).maps - want).abs().max() < 1e-5
    assert fast.held_layout.conversions == 2 and fast.folded.folds == 2
    # an error inside the pass leaves the model as it was (forwards and layouts restored)
    bad = torch.randn(1, 3, 64, 64)
    net.layer4.register_forward_hook(lambda m, i, o: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError, match="boom"):
        fast(bad, target=1)
    assert not any("forward" in vars(m) for m in net.modules())
    assert all(p.is_contiguous() for p in net.parameters())


def test_gradient_cam_on_a_transformer_keeps_its_layout():
    import timm

    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=4, img_size=64).eval()
    cam = cameras.GradCAM(vit)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(6))
    a = cam(x, target=1).maps
    assert cam.channels_last_now is False  # "auto": a patch grid stays as it is
    assert torch.equal(a, cameras.GradCAM(vit, channels_last=False)(x, target=1).maps)


def test_fingerprint_sums_small_tensors_together_as_one_by_one():
    from cameras.core.memory import _weighted_sum, _weighted_sums, weights_fingerprint

    g = torch.Generator().manual_seed(2)
    small = [torch.randn(n, generator=g) for n in (0, 1, 7, 300, 65_536)]
    small.append(torch.arange(5, dtype=torch.int64) + 70_000)  # an integer buffer (num_batches_tracked), > fp16's max
    small.append(torch.randn(3, 4, 1, 1, generator=g).double())
    small.append(torch.randn(6, generator=g).half())  # a half-precision neighbour promotes nothing
    got = _weighted_sums(small)
    want = torch.stack([_weighted_sum(t) for t in small])
    assert got.shape == (len(small),) and torch.allclose(got, want, rtol=1e-5, atol=1e-5)
    assert torch.isfinite(got).all()
    big = torch.randn(70_000, generator=g)
    ref = weights_fingerprint([*small, big])
    assert [f[-1] for f in ref] == pytest.approx([*want.tolist(), float(_weighted_sum(big))], rel=1e-5, abs=1e-5)
    a, b = torch.randn(16, generator=g), torch.randn(16, generator=g)
    base = weights_fingerprint([a, b])
    a2, b2 = b.clone(), a.clone()  # two equally long tensors' values exchanged (new storage: compared by sums)
    swapped = weights_fingerprint([a2, b2])
    assert [f[-1] for f in swapped] != [f[-1] for f in base]
    c = a.clone()
    c.data[[0, 5]] = c.data[[5, 0]].clone()  # a swap inside a small tensor
    assert weights_fingerprint([c])[0][-1] != weights_fingerprint([a])[0][-1]


class FlatView(torch.nn.Module):
    """A network that flattens a feature map with ``.view`` (LeNet style): it cannot take channels-last tensors."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.bn = torch.nn.BatchNorm2d(4)
        self.fc = torch.nn.Linear(4 * 14 * 14, 3)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).view(x.shape[0], -1))


def test_models_that_cannot_take_channels_last_fall_back_to_nchw():
    torch.manual_seed(3)
    net = FlatView().eval()
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(7))
    for make in (lambda **kw: cameras.GradCAM(net, layer="conv", **kw),
                 lambda **kw: cameras.CAMERAS(net, layer="conv", scales=[16], **kw)):  # a fixed input size
        ref = make(channels_last=False)(x, target=[0, 1]).maps
        auto = make()
        assert (auto(x, target=[0, 1]).maps - ref).abs().max() < 1e-5  # retried in NCHW
        assert auto.layout_refused and not auto.channels_last_now
        assert (auto(x, target=[0, 1]).maps - ref).abs().max() < 1e-5  # and NCHW from then on
        with pytest.raises(cameras.InputError, match="cannot run channels-last"):
            make(channels_last=True)(x, target=[0, 1])
        assert all(p.is_contiguous() for p in net.parameters()) and not any("forward" in vars(m) for m in net.modules())
    # a foldable pair below the layer is still folded on the NCHW retry (the failed channels-last pass found none)
    deep = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 3, padding=1), torch.nn.BatchNorm2d(3), torch.nn.ReLU(),
                               FlatView())
    with torch.no_grad():
        deep[1].running_mean.uniform_(-0.5, 0.5)
        deep[1].running_var.uniform_(0.5, 2.0)
    deep.eval()
    for make in (lambda **kw: cameras.GradCAM(deep, layer="3.conv", **kw),
                 lambda **kw: cameras.CAMERAS(deep, layer="3.conv", scales=[16], **kw)):
        ref = make(channels_last=False, fold_batchnorm=False)(x, target=[0, 1]).maps
        auto = make(fold_batchnorm=True)
        assert (auto(x, target=[0, 1]).maps - ref).abs().max() < 1e-5
        assert auto.layout_refused and len(auto.folded.pairs) == 1
    other = cameras.GradCAM(net, layer="conv", channels_last=False)
    with pytest.raises(RuntimeError, match="size mismatch|shapes cannot be multiplied"):
        other(torch.randn(1, 3, 20, 20))  # other errors are not taken for layout trouble
    assert not other.layout_refused


@pytest.mark.parametrize("name", ["scorecam", "rise"])
def test_masked_pass_methods_run_channels_last_with_the_reference_maps(name):
    from tests.test_folding import with_statistics

    torch.manual_seed(0)
    net = with_statistics(torchvision.models.resnet18(num_classes=7))
    x = torch.randn(2, 3, 64, 80, generator=torch.Generator().manual_seed(4))
    before = {n: (p.data_ptr(), p.is_contiguous(), p.detach().clone())
              for n, p in [*net.named_parameters(), *net.named_buffers()]}
    opts = {"batch_size": 32, "progress": False, **({"n_masks": 48} if name == "rise" else {})}
    ref = cameras.get_method(name, net, channels_last=False, **opts)
    auto = cameras.get_method(name, net, **opts)
    seen = []
    hook = net.layer1.register_forward_hook(
        lambda m, i, o: seen.append(o.is_contiguous(memory_format=torch.channels_last)))
    try:
        want, got = ref(x, target=[1, 2]), auto(x, target=[1, 2])
    finally:
        hook.remove()
    # the first pass (the class, and Score-CAM's activations) in the input's layout, the masked passes in the
    # layout asked for: NCHW throughout for the reference, channels-last after the first for "auto"
    half = len(seen) // 2
    assert not any(seen[:half]) and not seen[half] and all(seen[half + 1:]) and half > 1
    assert ref.channels_last_now is False and auto.channels_last_now is True
    assert want.maps.abs().max() > 0 and (got.maps - want.maps).abs().max() < 1e-5
    key = "raw" if name == "rise" else "channel_weights"
    assert torch.allclose(got.extras[key], want.extras[key], rtol=1e-5, atol=1e-7)
    after = dict([*net.named_parameters(), *net.named_buffers()])
    assert all(after[n].data_ptr() == p and after[n].is_contiguous() == c and torch.equal(after[n], v)
               for n, (p, c, v) in before.items())
    assert "channels_last" in auto.options and "channels_last" not in auto.result_options()
    with pytest.raises(cameras.InputError, match="channels_last"):
        cameras.get_method(name, net, channels_last="nhwc")
    # a model that cannot take channels-last tensors: retried in NCHW, and NCHW from then on
    flat = FlatView().eval()
    xs = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(7))
    opts = {"progress": False, **({"n_masks": 8} if name == "rise" else {"layer": "conv"})}
    want = cameras.get_method(name, flat, channels_last=False, **opts)(xs, target=[0, 1]).maps
    fallback = cameras.get_method(name, flat, **opts)
    assert (fallback(xs, target=[0, 1]).maps - want).abs().max() < 1e-5 and fallback.layout_refused
    with pytest.raises(cameras.InputError, match="cannot run channels-last"):
        cameras.get_method(name, flat, channels_last=True, **opts)(xs, target=[0, 1])
    # a failure after some masked batches were scored: all of them are run again in NCHW, none counted twice
    late = LateView().eval()
    opts = {"progress": False, "batch_size": 6, **({"n_masks": 18} if name == "rise" else {"layer": "conv"})}
    want = cameras.get_method(name, late, channels_last=False, **opts)(xs, target=[0, 1])
    late.calls, late.fail_at = 0, 3  # the first pass, one masked batch, then the failure
    got = cameras.get_method(name, late, **opts)(xs, target=[0, 1])
    assert late.failed and (got.maps - want.maps).abs().max() < 1e-5 and want.maps.abs().max() > 0
    key = "raw" if name == "rise" else "channel_weights"
    assert torch.allclose(got.extras[key], want.extras[key], rtol=1e-5, atol=1e-7)


class LateView(FlatView):
    """Takes channels-last tensors until its ``fail_at``-th call, then fails as a ``.view`` of one does."""

    calls, fail_at, failed = 0, 0, False

    def forward(self, x):
        self.calls += 1
        if self.calls == self.fail_at and not x.is_contiguous():
            self.failed = True
            raise RuntimeError("view size is not compatible with input tensor's size and stride")
        return self.fc(torch.relu(self.bn(self.conv(x))).reshape(x.shape[0], -1))


def test_methods_on_one_model_share_one_set_of_channels_last_copies():
    torch.manual_seed(4)
    net = torchvision.models.resnet18(num_classes=3).eval()
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(8))
    a, b = cameras.GradCAM(net), cameras.CAMERAS(net, scales=[64, 96])
    a(x, target=1)
    b(x, target=1)
    cameras.LayerCAM(net)(x, target=1)
    assert a.held_layout is b.held_layout and a.held_layout.conversions == 1  # converted once for all three
    assert cameras.GradCAM(torchvision.models.resnet18()).held_layout is not a.held_layout


def test_multiscale_offers_no_dummy_options_of_its_cam():
    names = cameras.methods.method_option_names("multiscale-layercam")
    assert "channels_last" in names and "fold_batchnorm" in names  # MultiScale's own, for its passes
    assert not any(n.startswith("method_") for n in names)
    torch.manual_seed(5)
    ms = cameras.build_method("multiscale-layercam", torchvision.models.resnet18(num_classes=3), scales=[64])
    assert "channels_last" not in ms.result_options() and "fold_batchnorm" not in ms.result_options()
    assert "channels_last" in cameras.methods.method_option_names("smooth-gradcam")  # Smooth runs its CAM
