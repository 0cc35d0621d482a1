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

    def same():
        return (folded_cam(x, target=1).maps - plain_cam(x, target=1).maps).abs().max() < 1e-5

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
