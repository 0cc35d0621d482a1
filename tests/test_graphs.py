"""CUDA graphs of the lower layers (`cuda_graphs=True`): the bookkeeping around the capture, run on a CPU.

CI has no GPU, so these tests put a stand-in for `torch.cuda.CUDAGraph` in place: a "graph"
that reruns the captured forward on its static input buffer, writes into its static output,
and refuses to replay when a weight it read has moved (a real graph would then read freed
memory). Everything else (which modules are graphed, keys per shape, copies in and out, the
eager fallbacks, recapture when weights move, state restored) is the code that runs on a GPU.
`benchmarks/cuda_check.py` checks the real capture against eager maps on a GPU.
"""

import pytest
import torch
import torchvision

import cameras
from cameras.core import graphs
from cameras.core.graphs import GraphedBelow, weights_addresses
from cameras.core.memory import modules_below


def stand_in(forward, static_in, pool):
    """A graph that reruns ``forward``; replaying after one of the module's weights moved is an error.

    Like a real graph it keeps running the code it captured: a compiled forward (no module of its
    own) that was recompiled since is not the one a replay runs."""
    module = getattr(forward, "__self__", None)
    tensors = lambda: [] if module is None else [*module.parameters(), *module.buffers()]  # noqa: E731
    seen = weights_addresses(tensors())
    static_out = forward(static_in)

    def replay():
        assert weights_addresses(tensors()) == seen, "stale graph: a weight moved after the capture"
        static_out.copy_(forward(static_in))

    return replay, static_out


@pytest.fixture
def on_stand_in(monkeypatch):
    monkeypatch.setattr(graphs, "capture_cuda_graph", stand_in)
    monkeypatch.setattr(graphs, "supports_graphs", lambda device: True)


def small_net():
    torch.manual_seed(0)
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(inplace=True),
                         nn.Conv2d(4, 5, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(5, 3)).eval()


def test_graphed_layers_equal_eager_capture_once_per_shape_and_restore_forwards():
    net = small_net()
    x = torch.randn(2, 3, 8, 8)
    g = GraphedBelow(net, net[3], modules_below(net, net[3], x[:1]), capture=stand_in)
    assert g.roots == [net[0], net[1], net[3]]  # the ReLU has no weights: it runs as it is
    with torch.no_grad():
        ref = net(x).clone()
        ref_small = net(x[:1, :, :6, :6]).clone()
        with g.active():
            assert all("forward" in vars(r) for r in g.roots)
            outs = [net(x), net(x), net(x[:1, :, :6, :6])]
    assert torch.equal(outs[0], ref) and torch.equal(outs[1], ref) and torch.equal(outs[2], ref_small)
    assert g.captures == 6 and g.replays == 9  # 3 modules × 2 shapes; 3 modules × 3 calls
    assert not any("forward" in vars(r) for r in g.roots)
    # outputs are copies: the in-place ReLU after the batch norm edits its copy, not the graph's buffer
    key = next(k for k in g._graphs if k[0] == 1 and k[1] == (2, 4, 8, 8))
    assert (g._graphs[key][2] < 0).any()
    # with gradients on (the head's pass), modules run as they are
    with g.active():
        y = net(x)
    assert y.requires_grad and g.replays == 9


def test_graphs_follow_weights_edited_in_place_and_are_recaptured_when_weights_move():
    net = small_net()
    x = torch.randn(1, 3, 8, 8)
    g = GraphedBelow(net, net[3], modules_below(net, net[3], x), capture=stand_in)
    with torch.no_grad(), g.active():
        net(x)
    assert g.captures == 3
    with torch.no_grad():
        net[0].weight.mul_(2)  # in place: the graphs still read the right memory
        ref = net(x).clone()
        with g.active():
            assert torch.equal(net(x), ref)
    assert g.captures == 3
    net[3].weight.data = net[3].weight.data * 0.5  # moved: the stand-in would refuse a stale replay
    with torch.no_grad():
        ref = net(x).clone()
        with g.active():
            assert torch.equal(net(x), ref)
    assert g.captures == 6


def test_failed_capture_runs_eagerly_with_a_warning_and_the_graph_count_is_bounded(monkeypatch):
    net = small_net()
    x = torch.randn(1, 3, 8, 8)

    tries = []

    def refuses(forward, static_in, pool):
        tries.append(static_in.shape)
        raise RuntimeError("operation not permitted when stream is capturing")

    g = GraphedBelow(net, net[3], modules_below(net, net[3], x), capture=refuses)
    with torch.no_grad():
        ref = net(x).clone()
        with g.active(), pytest.warns(RuntimeWarning, match="capture of a Conv2d at input .*eagerly from now on") \
                as seen:
            assert torch.equal(net(x), ref)
        with g.active():  # no second attempt, no second warning, at any shape
            assert torch.equal(net(x), ref)
            net(x[..., :6, :6])
    assert len(seen) == 1 and len(tries) == 1 and "Conv2d" in g.disabled
    assert g.captures == 0 and g.replays == 0
    assert not any("forward" in vars(m) for m in net.modules())
    monkeypatch.setattr(graphs, "MAX_GRAPHS", 4)
    g = GraphedBelow(net, net[3], modules_below(net, net[3], x), capture=stand_in)
    with torch.no_grad(), g.active():
        for size in (6, 7, 8):
            net(x[..., :size, :size])
    assert g.captures == 9 and len(g._graphs) <= 4  # dropped and captured again as shapes came


def test_cameras_with_cuda_graphs_gives_the_eager_maps(on_stand_in):
    net = torchvision.models.resnet18(num_classes=7).eval()
    x = torch.randn(2, 3, 64, 80, generator=torch.Generator().manual_seed(3))
    ref = cameras.CAMERAS(net, scales=[64, 96, 128], fold_batchnorm=False)(x, target=[1, 2])
    fast = cameras.CAMERAS(net, scales=[64, 96, 128], cuda_graphs=True)
    got = fast(x, target=[1, 2])
    assert torch.equal(got.maps, ref.maps) and torch.equal(got.probs, ref.probs)
    roots = fast._graphed.roots
    assert [type(r).__name__ for r in roots] == ["Conv2d", "BatchNorm2d", "Sequential", "Sequential",
                                                 "Sequential", "Sequential"]  # conv1, bn1, layer1..layer4
    assert fast._graphed.captures == 6 * 3
    again = fast(x, target=None)  # the top-1 rule: same passes, no new capture
    assert torch.equal(again.maps, cameras.CAMERAS(net, scales=[64, 96, 128], fold_batchnorm=False)(x).maps)
    assert fast._graphed.captures == 6 * 3
    assert not any("forward" in vars(m) for m in net.modules())
    ms = cameras.MultiScale(cameras.LayerCAM(net), scales=[64, 96], cuda_graphs=True)
    ref_ms = cameras.MultiScale(cameras.LayerCAM(net), scales=[64, 96], fold_batchnorm=False)(x, target=1)
    assert torch.equal(ms(x, target=1).maps, ref_ms.maps) and ms._graphed.captures == 12


def test_cuda_graphs_option_is_checked():
    net = torchvision.models.resnet18(num_classes=7).eval()
    with pytest.raises(cameras.InputError, match="cuda_graphs must be True or False"):
        cameras.CAMERAS(net, cuda_graphs="yes")
    with pytest.raises(cameras.InputError, match="without amp"):
        cameras.CAMERAS(net, cuda_graphs=True, amp="bf16")
    with pytest.raises(cameras.InputError, match="needs the model and input on a CUDA device.*cpu"):
        cameras.CAMERAS(net, scales=[64], cuda_graphs=True)(torch.randn(1, 3, 64, 64))
    assert "cuda_graphs" in cameras.CAMERAS.neutral_options


def test_modules_with_hooks_inside_run_eagerly_and_expanded_inputs_are_copied_densely():
    nn = torch.nn
    net = nn.Sequential(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), nn.Conv2d(4, 2, 1), nn.Flatten()).eval()
    x = torch.randn(1, 3, 8, 8).expand(2, 3, 8, 8)  # overlapping memory (stride 0)
    fired = []
    handle = net[0][0].register_forward_hook(lambda *_: fired.append(1))
    g = GraphedBelow(net, net[1], modules_below(net, net[1], x[:1]), capture=stand_in)
    assert g.roots == [net[0], net[1]]
    fired.clear()  # modules_below ran the model once
    with torch.no_grad():
        ref = net(x).clone()
        with g.active():
            outs = [net(x), net(x)]
    handle.remove()
    assert all(torch.equal(o, ref) for o in outs)
    assert len(fired) == 3  # the hook inside net[0] fired on every call: that root was not graphed
    assert g.captures == 1 and g.replays == 2  # net[1] was
    # without the hook net[0] is graphed; a hook added after its capture is seen at the next call and fires
    with torch.no_grad(), g.active():
        net(x)
    assert g.captures == 2 and g.replays == 4
    handle = net[0][0].register_forward_hook(lambda *_: fired.append(1))
    with torch.no_grad(), g.active():
        out = net(x)
    handle.remove()
    assert len(fired) == 4 and g.replays == 5 and torch.equal(out, ref)


def test_compiled_and_graphed_lower_layers_follow_an_in_place_weight_edit(on_stand_in):
    torch.manual_seed(0)
    nn = torch.nn
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 6, 3, padding=1),
                        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3)).eval()
    x = torch.randn(1, 3, 24, 24, generator=torch.Generator().manual_seed(4))
    both = cameras.CAMERAS(net, layer="3", scales=[24], compile=True, cuda_graphs=True)
    eager = cameras.CAMERAS(net, layer="3", scales=[24], channels_last=False)
    assert (both(x, target=1).maps - eager(x, target=1).maps).abs().max() < 1e-5
    with torch.no_grad():
        net[0].weight.mul_(-1.0)  # in place: the compiled code (frozen weights) is recompiled: old graphs are stale
    changed = eager(x, target=1).maps
    got = both(x, target=1).maps
    assert both._compiled.compilations == 2 and both._graphed.captures == 6  # 3 roots, captured twice
    assert (got - changed).abs().max() < 1e-5
