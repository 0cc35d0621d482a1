"""Batch norms folded into convolutions below the explained layer: same maps, only safe pairs, model untouched."""

import pytest
import torch
import torchvision
from torch import nn

import cameras
from cameras.core.folding import FoldedBelow, foldable_pairs, folded_weights


def with_statistics(net: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial batch norm statistics and affine weights, so that a wrong fold shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                if m.running_mean is not None:
                    m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
                    m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.rand(n, generator=g) - 0.5)
    return net.eval()


def pairs_of(net, layer, x):
    return foldable_pairs(net, layer, x)


class NormAct(nn.BatchNorm2d):
    """A batch norm subclass that also activates (as timm's BatchNormAct2d): only the norm may be skipped."""

    def forward(self, x):
        return torch.nn.functional.relu6(super().forward(x) * 3.0)


def test_folded_weights_compute_the_pair_in_float64_precision():
    conv, bn = nn.Conv2d(3, 5, 3, bias=False), with_statistics(nn.BatchNorm2d(5))
    x = torch.randn(2, 3, 9, 9, generator=torch.Generator().manual_seed(1))
    w, b = folded_weights(conv, bn)
    want = bn(conv(x.double().float()))
    got = nn.functional.conv2d(x, w, b)
    assert w.dtype == torch.float32 and (got - want).abs().max() < 1e-5
    # channels-last weights give channels-last folded weights (what the passes then run with)
    conv.weight.data = conv.weight.data.contiguous(memory_format=torch.channels_last)
    w2, _ = folded_weights(conv, bn)
    assert w2.is_contiguous(memory_format=torch.channels_last) and torch.allclose(w2, w)


def test_cameras_folded_equals_unfolded_on_resnet_and_restores_the_model():
    torch.manual_seed(0)
    net = with_statistics(torchvision.models.resnet18(num_classes=7))
    x = torch.randn(2, 3, 64, 80, generator=torch.Generator().manual_seed(2))
    before = {n: (p.data_ptr(), p.detach().clone()) for n, p in [*net.named_parameters(), *net.named_buffers()]}
    for channels_last in (False, True):
        plain = cameras.CAMERAS(net, scales=[64, 96], channels_last=channels_last, fold_batchnorm=False)
        folded = cameras.CAMERAS(net, scales=[64, 96], channels_last=channels_last)
        a, b = plain(x, target=[1, 2]).maps, folded(x, target=[1, 2]).maps
        assert (a - b).abs().max() < 1e-5 and a.abs().max() > 0
        assert len(folded.folded.pairs) == 20  # every batch norm of a ResNet-18 (downsampling ones too)
        multi = cameras.MultiScale(cameras.LayerCAM(net), scales=[64, 96], channels_last=channels_last)
        unf = cameras.MultiScale(cameras.LayerCAM(net), scales=[64, 96], channels_last=channels_last,
                                 fold_batchnorm=False)
        assert (multi(x, target=1).maps - unf(x, target=1).maps).abs().max() < 1e-5
    assert not any("forward" in vars(m) for m in net.modules())
    after = dict([*net.named_parameters(), *net.named_buffers()])
    assert all(after[n].data_ptr() == p and torch.equal(after[n], v) for n, (p, v) in before.items())
    assert "fold_batchnorm" not in folded.result_options()  # it does not change the maps
    with pytest.raises(cameras.InputError, match="fold_batchnorm"):
        cameras.CAMERAS(net, fold_batchnorm="yes")


def test_weights_changed_between_calls_are_folded_afresh():
    torch.manual_seed(1)
    net = with_statistics(torchvision.models.resnet18(num_classes=5))
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    folded = cameras.CAMERAS(net, scales=[64, 96])
    plain = cameras.CAMERAS(net, scales=[64, 96], fold_batchnorm=False)
    first = folded(x, target=1).maps
    folded(x, target=1)
    assert folded.folded.folds == 1  # kept between calls
    net.layer3[0].bn1.running_mean.data.add_(2.0)  # through .data: no version counter moves
    changed = plain(x, target=1).maps
    assert (changed - first).abs().max() > 0.01
    assert (folded(x, target=1).maps - changed).abs().max() < 1e-5
    assert folded.folded.folds == 2
    # a convolution's weight edited through .data: the channels-last copies are made afresh, and so the fold
    net.layer2[0].conv1.weight.data.mul_(-1.0)
    again = plain(x, target=1).maps
    assert (again - changed).abs().max() > 0.01
    assert (folded(x, target=1).maps - again).abs().max() < 1e-5
    assert folded.folded.folds == 3 and folded.held_layout.conversions == 2


def test_only_pairs_whose_convolution_output_is_read_by_the_norm_alone_are_folded():
    class Residual(nn.Module):  # the convolution's output is also added back: folding it would change the sum
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)

        def forward(self, x):
            y = self.conv(x)
            return self.bn(y) + y

    class Reused(nn.Module):  # one convolution run twice
        def __init__(self):
            super().__init__()
            self.conv, self.bn1, self.bn2 = nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4), nn.BatchNorm2d(4)

        def forward(self, x):
            return self.bn1(self.conv(x)) + self.bn2(self.conv(x))

    net = with_statistics(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), Residual(), Reused(),
                                        nn.Conv2d(4, 4, 1), NormAct(4), nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4),
                                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)))
    x = torch.randn(1, 3, 12, 12, generator=torch.Generator().manual_seed(4))
    pairs = pairs_of(net, net[6], x)  # the layer is a convolution: its own batch norm runs above it
    assert pairs == [(net[0], net[1]), (net[4], net[5])]
    assert pairs_of(net, net[7], x)[-1] == (net[6], net[7])  # a batch norm as the layer: its input may be folded
    assert pairs_of(net, net[5], x) == pairs  # net[6], net[7] run above the layer (with gradients): left alone
    # and the folded network computes what the original does (the subclass's activation still applies)
    folded = FoldedBelow(net, net[7], x)
    with torch.no_grad():
        want = net(x)
        with folded.active():
            assert "forward" in vars(net[5]) and "forward" not in vars(net[2].conv)
            got = net(x)
    assert (got - want).abs().max() < 1e-5 and not any("forward" in vars(m) for m in net.modules())


def test_training_mode_and_hooks_leave_a_pair_unfolded_for_that_call():
    net = with_statistics(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 1),
                                        nn.BatchNorm2d(4), nn.ReLU()))
    x = torch.randn(1, 3, 8, 8)
    folded = FoldedBelow(net, net[5], x)
    assert len(folded.pairs) == 2
    net[1].train()
    seen = []
    handle = net[3].register_forward_hook(lambda _m, _i, out: seen.append(out.clone()))
    with folded.active():
        assert "forward" not in vars(net[0]) and "forward" not in vars(net[3])  # training; hooked
        assert "forward" not in vars(net[4])
    handle.remove()
    net[1].eval()
    with folded.active():
        assert all("forward" in vars(m) for m in (net[0], net[1], net[3], net[4]))
    with pytest.raises(RuntimeError, match="boom"), folded.active():
        raise RuntimeError("boom")
    assert not any("forward" in vars(m) for m in net.modules())


def test_a_model_that_cannot_run_under_the_watch_is_not_folded():
    class Picky(nn.Module):
        def forward(self, x):
            if torch._C._is_torch_function_mode_enabled():
                raise RuntimeError("no modes here")
            return x

    net = with_statistics(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), Picky()))
    x = torch.randn(1, 3, 8, 8)
    assert pairs_of(net, net[2], x) == []


def test_densenet_concatenations_are_not_mistaken_for_convolution_outputs():
    # DenseNet normalises concatenations that are freed after use; a later convolution's output may get the
    # same id, which once paired a batch norm with a convolution that runs after it
    torch.manual_seed(2)
    net = with_statistics(torchvision.models.densenet121(num_classes=6))
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    cam = cameras.CAMERAS(net, scales=[64, 96])
    got = cam(x, target=2).maps
    pairs = cam.folded.pairs
    assert len(pairs) == 59 and all(c.out_channels == b.num_features for c, b in pairs)  # conv0/norm0 + conv1/norm2s
    want = cameras.CAMERAS(net, scales=[64, 96], fold_batchnorm=False)(x, target=2).maps
    assert (got - want).abs().max() < 1e-5


def small_pair_net(norm=None):
    return with_statistics(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), norm or nn.BatchNorm2d(4), nn.ReLU(),
                                         nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)))


def test_norms_that_do_not_normalise_with_their_own_statistics_are_not_folded():
    class BatchStats(nn.BatchNorm2d):  # test-time adaptation: batch statistics in eval mode
        def forward(self, x):
            return nn.functional.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, True,
                                            0.0, self.eps)

    class Doubled(nn.BatchNorm2d):  # not its own weight
        def forward(self, x):
            return nn.functional.batch_norm(x, self.running_mean, self.running_var, self.weight * 2, self.bias,
                                            False, 0.0, self.eps)

    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(6))
    for norm in (BatchStats(4), Doubled(4), nn.BatchNorm2d(4, track_running_stats=False)):
        net = small_pair_net(norm)
        assert pairs_of(net, net[5], x) == [(net[3], net[4])], type(norm).__name__
    # statistics dropped after the pairs were found: left alone for the call, no crash
    net = small_pair_net()
    folded = FoldedBelow(net, net[5], x)
    net[1].running_mean, net[1].running_var = None, None
    with torch.no_grad():
        want = net(x)
        with folded.active():
            assert "forward" not in vars(net[0]) and "forward" in vars(net[3])
            assert torch.allclose(net(x), want, atol=1e-5)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")
def test_readers_the_watch_cannot_see_are_caught_by_the_check_pass():
    @torch.jit.script
    def scripted(y: torch.Tensor) -> torch.Tensor:
        return y * 0.5

    class Hidden(nn.Module):  # the convolution's output is read by TorchScript, which no torch function mode sees
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)

        def forward(self, x):
            y = self.conv(x)
            return self.bn(y) + scripted(y)

    net = with_statistics(nn.Sequential(Hidden(), nn.ReLU(), nn.Conv2d(4, 2, 1), nn.AdaptiveAvgPool2d(1),
                                        nn.Flatten()))
    x = torch.randn(1, 3, 8, 8)
    assert pairs_of(net, net[1], x) == [(net[0].conv, net[0].bn)]  # the watch alone would fold it
    folded = FoldedBelow(net, net[1], x)
    assert folded.pairs == [] and not folded.checked
    a = cameras.CAMERAS(net, layer="1", scales=[8, 12])(x, target=1).maps
    b = cameras.CAMERAS(net, layer="1", scales=[8, 12], fold_batchnorm=False)(x, target=1).maps
    assert (a - b).abs().max() < 1e-6


def test_replaced_modules_eps_global_hooks_and_instance_forwards_are_respected():
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(7))
    net = small_pair_net()
    folded_cam = cameras.CAMERAS(net, layer="5", scales=[16, 24])
    plain_cam = cameras.CAMERAS(net, layer="5", scales=[16, 24], fold_batchnorm=False)

    def same():  # and not constant: a map of zeros (class 2 here) would agree whatever folding did
        got, want = folded_cam(x, target=1).maps, plain_cam(x, target=1).maps
        return (got - want).abs().max() < 1e-5 and want.std() > 0.05

    assert same() and len(folded_cam.folded.pairs) == 2
    first = folded_cam.folded
    net[1] = with_statistics(nn.BatchNorm2d(4), seed=9)  # a module replaced: the pairs are found again
    assert same() and folded_cam.folded is not first and folded_cam.folded.pairs[0] == (net[0], net[1])
    net[4].eps = 0.5  # not a tensor: in the fingerprint on its own
    assert same()
    seen = []
    handle = nn.modules.module.register_module_forward_hook(lambda m, i, o: seen.append(type(m)))
    try:
        with folded_cam.folded.active():
            assert not any("forward" in vars(m) for m in net.modules())  # hooks on every module: nothing folded
    finally:
        handle.remove()
    net[3].forward = lambda t: nn.Conv2d.forward(net[3], t) * 0.5  # a patched instance forward is kept
    assert same()
    with folded_cam.folded.active():
        assert "forward" in vars(net[0]) and "forward" not in vars(net[4])
    del net[3].forward
    # a bfloat16 model: folding in bf16 would round differently, so it is left alone
    low = small_pair_net().to(torch.bfloat16)
    assert pairs_of(low, low[5], x.to(torch.bfloat16)) == []


def test_overlapping_blocks_in_two_threads_leave_the_model_unchanged():
    import threading

    net = small_pair_net()
    x = torch.randn(1, 3, 8, 8)
    a, b = FoldedBelow(net, net[5], x), FoldedBelow(net, net[5], x)  # two explainers on one model
    a_in, release, b_in = threading.Event(), threading.Event(), threading.Event()

    def first():
        with a.active():
            a_in.set()
            release.wait(10)

    def second():
        a_in.wait(10)
        with b.active():
            b_in.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    assert a_in.wait(10) and not b_in.wait(0.3)  # the second waits for the first block to end
    release.set()
    for t in threads:
        t.join(10)
    assert b_in.is_set() and not any("forward" in vars(m) for m in net.modules())


def test_swapping_a_module_another_thread_has_swapped_is_refused_not_corrupting():
    """Two model objects sharing modules (a wrapper and the model inside it) have two locks: a second thread's swap
    would take the first's swapped-in forward for the module's own and leave it behind for good. It is refused; the
    same thread may swap again inside its block (compiled forwards under CUDA graphs)."""
    import threading

    from cameras.core.compiled import swapped_forwards

    conv = nn.Conv2d(3, 4, 3)
    inside, release = threading.Event(), threading.Event()

    def hold():
        with swapped_forwards([conv], [lambda t: t + 1]):
            inside.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    assert inside.wait(10)
    try:
        with pytest.raises(cameras.InputError, match="shares the module Conv2d"):
            with swapped_forwards([conv], [lambda t: t + 2]):
                pass
    finally:
        release.set()
        t.join(10)
    assert "forward" not in vars(conv)
    with swapped_forwards([conv], [lambda t: t + 1]), swapped_forwards([conv], [lambda t: t + 2]):
        assert conv(torch.zeros(1)).item() == 2.0
    assert "forward" not in vars(conv) and conv(torch.zeros(1, 3, 3, 3)).shape == (1, 4, 1, 1)
    with swapped_forwards([conv], [lambda t: t + 3]):  # released: free for any thread again
        pass


class ActNorm(nn.BatchNorm2d):
    """As timm's BatchNormAct2d: normalise, then the activation module it holds."""

    def __init__(self, n, act):
        super().__init__(n)
        self.act = act

    def forward(self, x):
        return self.act(super().forward(x))


def activations_net():
    """Pairs followed by each kind of activation module, one shared ReLU, one norm that activates itself."""
    shared = nn.ReLU(inplace=True)
    return with_statistics(nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), shared,                      # 0-2: in place, shared
        nn.Conv2d(6, 6, 3, padding=1, groups=6), ActNorm(6, nn.ReLU6(inplace=True)),   # 3-4: depthwise, inside
        nn.Conv2d(6, 6, 1), nn.BatchNorm2d(6), nn.SiLU(),                              # 5-7
        nn.Conv2d(6, 6, 3, stride=2, padding="valid"), nn.BatchNorm2d(6), nn.Hardswish(),  # 8-10
        nn.Conv2d(6, 6, 3, padding=1), nn.BatchNorm2d(6), nn.GELU(approximate="tanh"),  # 11-13
        nn.Conv2d(6, 6, 3, padding=1), nn.BatchNorm2d(6), nn.Hardtanh(-0.5, 0.7),      # 14-16
        nn.Conv2d(6, 6, 3, padding=1), nn.BatchNorm2d(6), shared,                      # 17-19: the shared one
        nn.Conv2d(6, 4, 1), nn.BatchNorm2d(4), nn.GELU(),                              # 20-22: the layer 22
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)))


def test_activations_are_fused_into_folded_convolutions_with_the_unfused_values(monkeypatch):
    import copy

    from cameras.core.folding import fusion_available

    fused_calls = []
    own = torch.ops.mkldnn._convolution_pointwise
    monkeypatch.setattr(torch.ops.mkldnn, "_convolution_pointwise",
                        lambda *a: fused_calls.append(a[7]) or own(*a))  # a[7]: the activation's name
    net = activations_net()
    x = torch.randn(2, 3, 20, 20, generator=torch.Generator().manual_seed(8))
    folded = FoldedBelow(net, net[22], x, fuse_activations=True)
    assert len(folded.pairs) == 8 and folded.checked
    fused = [a for a in folded.activations]
    want = [net[2], net[4].act, net[7], net[10], net[13], net[16], net[19], net[22]]
    assert fused == (want if fusion_available() else [None] * 8)
    with torch.no_grad():
        ref = net(x)
        for layout in (torch.contiguous_format, torch.channels_last):
            fused_calls.clear()
            with folded.active():
                got = net(x.contiguous(memory_format=layout))
                swapped = fusion_available()
                assert all(("forward" in vars(m)) == swapped for m in (net[2], net[4].act, net[19]))
                assert "forward" in vars(net[0]) and "forward" not in vars(net[22])  # the layer stays a module
            assert (got - ref).abs().max() < 1e-5, layout
            assert fused_calls == (["relu", "hardtanh", "swish", "hardswish", "gelu", "hardtanh", "relu"]
                                   if fusion_available() else [])
    assert all("forward" not in vars(m) for m in net.modules())
    # without fusion the same pairs fold and the activations run as modules
    plain = FoldedBelow(net, net[22], x)
    assert plain.pairs == folded.pairs and plain.activations == [None] * 8
    # bfloat16: the folded weights are cast to the input's dtype, the fused output is close to the unfused bf16 pass
    below = nn.Sequential(*net[:23])
    low = FoldedBelow(below, below[22], x, fuse_activations=True)
    with torch.no_grad():
        want16 = copy.deepcopy(below).to(torch.bfloat16)(x.bfloat16()).float()
        with low.active():
            got16 = below(x.bfloat16())
    assert got16.dtype == torch.bfloat16 and below[0].weight.dtype == torch.float32
    assert {dtype for _, dtype in low._cast} == {torch.bfloat16}  # the float32 folded weights, cast
    r = torch.corrcoef(torch.stack([got16.float().flatten(), want16.flatten()]))[0, 1]
    assert r > 0.99 and (got16.float() - want16).abs().max() < 0.1 * want16.abs().max()


def test_activations_read_otherwise_or_after_the_layer_are_not_fused():
    from cameras.core.folding import fusion_available

    class PreActivationRead(nn.Module):  # the norm's output is read again after an out-of-place activation
        def __init__(self):
            super().__init__()
            self.conv, self.bn, self.act = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU()

        def forward(self, x):
            y = self.bn(self.conv(x))
            return self.act(y) + y

    class ReadFirst(nn.Module):  # something else reads it before the in-place activation
        def __init__(self):
            super().__init__()
            self.conv, self.bn, self.act = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(inplace=True)

        def forward(self, x):
            y = self.bn(self.conv(x))
            z = y * 2
            return self.act(y) + z

    class Functional(nn.Module):  # a functional activation: no module to stand in for
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)

        def forward(self, x):
            return nn.functional.relu(self.bn(self.conv(x)))

    x = torch.randn(1, 3, 10, 10, generator=torch.Generator().manual_seed(9))
    for block in (PreActivationRead(), ReadFirst(), Functional()):
        net = with_statistics(nn.Sequential(block, nn.Conv2d(4, 2, 1), nn.ReLU(), nn.Flatten()))
        found = {}
        assert foldable_pairs(net, net[2], x, activations=found) == [(block.conv, block.bn)]
        assert found == {}, type(block).__name__  # not found, not merely refused by the check pass
        folded = FoldedBelow(net, net[2], x, fuse_activations=True)
        assert folded.pairs == [(block.conv, block.bn)] and folded.activations == [None], type(block).__name__
        with torch.no_grad(), folded.active():
            assert torch.allclose(net(x), net[3](net[2](net[1](block(x)))), atol=1e-5)
    # the layer is the second norm: its activation runs after the layer's output is taken, so it stays
    net = small_pair_net()
    first = [net[2]] if fusion_available() else [None]
    assert FoldedBelow(net, net[4], x, fuse_activations=True).activations == first + [None]
    # the layer is the activation: found, but it stays a module of its own (its output is the explained one)
    folded = FoldedBelow(net, net[5], x, fuse_activations=True)
    assert folded.activations == first + ([net[5]] if first[0] else [None])
    with torch.no_grad(), folded.active():
        assert "forward" not in vars(net[5]) and ("forward" in vars(net[2])) == bool(first[0])
    # an activation with a hook of its own is not fused for that call; the pair is still folded
    net = small_pair_net()
    folded = FoldedBelow(net, net[5], x, fuse_activations=True)
    seen = []
    handle = net[2].register_forward_hook(lambda m, i, o: seen.append(float(i[0].min())))
    try:
        with torch.no_grad():
            want = net(x)
            with folded.active():
                got = net(x)
                assert "forward" not in vars(net[2]) and "forward" in vars(net[0])
    finally:
        handle.remove()
    assert torch.allclose(got, want, atol=1e-5) and seen[0] < 0 and seen[1] < 0  # it saw the pre-activation input


def test_bf16_cameras_folds_and_fuses_and_stays_close_to_fp32():
    from cameras.core.folding import fusion_available

    net = with_statistics(torchvision.models.resnet18(num_classes=5))
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(10))
    ref = cameras.CAMERAS(net, scales=[64, 96])(x, target=2).maps
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # bf16 emulated on CPUs without bf16 instructions
        low = cameras.CAMERAS(net, scales=[64, 96], precision="bf16")
        got = low(x, target=2).maps
        unfolded = cameras.CAMERAS(net, scales=[64, 96], precision="bf16", fold_batchnorm=False)(x, target=2).maps
    assert len(low.folded.pairs) == 20  # every pair below layer4's output (layer4's own last norm included)
    # the stem's and each block's first ReLU; the others follow the residual addition
    assert sum(a is not None for a in low.folded.activations) == (9 if fusion_available() else 0)
    # every module below the layer runs folded, on its folded weights: none of theirs gets a bf16 copy
    assert low._held_low._copies == []
    handle = net.layer1[0].conv1.register_forward_hook(lambda *_: None)  # a hooked pair is not folded
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            hooked = low(x, target=2).maps
    finally:
        handle.remove()
    assert len(low._held_low._copies) == 5  # that convolution's weight, its norm's weight, bias and statistics
    assert all(c.dtype == torch.bfloat16 for c in low._held_low._copies)
    for m in (got, unfolded, hooked):
        r = torch.corrcoef(torch.stack([m.flatten(), ref.flatten()]))[0, 1]
        assert 0.99 < r < 1.0
    assert all("forward" not in vars(m) for m in net.modules())
    assert all(p.dtype == torch.float32 for p in net.parameters())


def test_timm_norm_with_its_activation_is_folded_and_fused():
    from timm.layers import BatchNormAct2d

    from cameras.core.folding import fusion_available

    net = with_statistics(nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), BatchNormAct2d(6, act_layer=nn.ReLU6),
                                        nn.Conv2d(6, 4, 1), BatchNormAct2d(4, act_layer=nn.SiLU),
                                        nn.Conv2d(4, 4, 1), BatchNormAct2d(4, apply_act=False), nn.ReLU()))
    x = torch.randn(2, 3, 12, 12, generator=torch.Generator().manual_seed(11))
    folded = FoldedBelow(net, net[6], x, fuse_activations=True)
    # the last norm has no activation of its own (an Identity): the ReLU after it, the layer, is found but stays hooked
    want = [net[1].act, net[3].act, net[6]] if fusion_available() else [None] * 3
    assert len(folded.pairs) == 3 and folded.activations == want
    with torch.no_grad():
        ref = net(x)
        with folded.active():
            got = net(x)
    assert (got - ref).abs().max() < 1e-5


def test_a_convolution_that_pads_otherwise_is_folded_but_not_fused():
    net = with_statistics(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"), nn.BatchNorm2d(4),
                                        nn.ReLU(), nn.Conv2d(4, 4, 3, padding="same"), nn.BatchNorm2d(4), nn.ReLU(),
                                        nn.Conv2d(4, 2, 1), nn.ReLU(), nn.Flatten()))
    x = torch.randn(1, 3, 9, 9, generator=torch.Generator().manual_seed(13))
    folded = FoldedBelow(net, net[7], x, fuse_activations=True)
    assert len(folded.pairs) == 2 and folded.activations == [None, None]
    with torch.no_grad():
        want = net(x)
        with folded.active():
            assert torch.allclose(net(x), want, atol=1e-5)
