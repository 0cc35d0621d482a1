"""Hooks, model state, and the pitfalls users meet in other saliency libraries."""

import gc
import warnings

import pytest
import torch
from torch import nn

import cameras
from cameras import InputError, LayerError

from .conftest import TinyNet, hook_count, snapshot


def test_state_restored_after_success():
    net = TinyNet().train()
    net.features[0].weight.requires_grad_(False)
    net.fc.bias.grad = torch.ones_like(net.fc.bias)
    net.features[2].eval()  # mixed modes must come back as they were
    before = snapshot(net)
    res = cameras.CAMERAS(net, layer="features", scales=[16, 24])(torch.randn(2, 3, 16, 16))
    after = snapshot(net)
    assert before[0] == after[0] and before[1] == after[1]
    assert after[2][0] is None and torch.equal(after[2][-1], torch.ones(5))
    assert all(g is None for g in after[2][1:-1])
    assert hook_count(net) == 0
    assert res.maps.shape == (2, 16, 16)


def test_explains_in_eval_mode():
    """A train-mode model with dropout is explained deterministically, in eval mode."""
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Dropout(0.9), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(4, 3))
    net.train()
    x = torch.randn(1, 3, 16, 16)
    m = cameras.CAMERAS(net, layer="2", scales=[16, 20])
    a, b = m(x, target=0), m(x, target=0)
    assert torch.equal(a.maps, b.maps)
    assert net.training


class Exploding(TinyNet):
    boom = False

    def forward(self, x):
        a = self.features(x)
        if self.boom:
            raise RuntimeError("boom inside forward")
        return self.fc(self.pool(self.act(a)).flatten(1))


def test_state_restored_after_exception():
    net = Exploding().train()
    net.boom = True
    before = snapshot(net)
    with pytest.raises(RuntimeError, match="boom"):
        cameras.CAMERAS(net, layer="features", scales=[16])(torch.randn(1, 3, 16, 16))
    after = snapshot(net)
    assert before[0] == after[0] and before[1] == after[1]
    assert all(g is None for g in after[2])
    assert hook_count(net) == 0


@pytest.mark.parametrize("ctx", [torch.no_grad, torch.inference_mode])
def test_works_without_grad_mode(ctx):
    torch.manual_seed(0)  # the segmentation net below draws from the global generator (unseeded, it was flaky)
    net = TinyNet()
    x = torch.randn(1, 3, 16, 16)
    want = cameras.CAMERAS(net, layer="features", scales=[16, 24])(x, target=1).maps
    with ctx():
        xi = torch.randn(1, 3, 16, 16) * 0 + x
        got = cameras.CAMERAS(net, layer="features", scales=[16, 24])(xi, target=1).maps
    assert torch.allclose(got, want)
    # targets made in that mode too: class ids from the model's own output, a region mask
    from cameras.methods import GradCAM

    with ctx():
        ids = torch.ones(1, dtype=torch.long) * net(x).argmax(1) * 0 + 1
        got = cameras.CAMERAS(net, layer="features", scales=[16, 24])(xi, target=ids).maps
        got_gc = GradCAM(net, layer="features")(xi, target=ids).maps
    assert torch.allclose(got, want) and torch.allclose(got_gc, GradCAM(net, layer="features")(x, target=1).maps)
    seg = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 3, 1))
    mask = torch.zeros(16, 16)
    mask[2:9, 3:12] = 1
    want = GradCAM(seg, layer="1")(x, target=cameras.RegionTarget(2, mask=mask)).maps
    with ctx():
        region = cameras.RegionTarget(2, mask=mask * 1)
        got = GradCAM(seg, layer="1")(xi, target=region).maps
    assert torch.allclose(got, want) and want.abs().sum() > 0


def test_no_backward_below_layer():
    calls = []

    class Spy(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.clone()

        @staticmethod
        def backward(ctx, g):
            calls.append(1)
            return g

    class Net(TinyNet):
        def forward(self, x):
            return super().forward(Spy.apply(x.requires_grad_(True) if False else x) * 1.0)

    net = Net()
    for p in net.parameters():
        p.requires_grad_(True)
    x = torch.randn(1, 3, 16, 16, requires_grad=True)
    cameras.CAMERAS(net, layer="features", scales=[16, 24])(x)
    assert calls == []  # nothing below the layer was differentiated
    assert x.grad is None
    assert all(p.grad is None for p in net.parameters())


def test_inplace_after_layer_matches_reference():
    from .reference import reference_cameras

    net = TinyNet()  # has nn.ReLU(inplace=True) right after the hooked layer
    x = torch.randn(2, 3, 20, 24)
    res = cameras.CAMERAS(net, layer="features", scales=[20, 30])(x)
    want, _, _ = reference_cameras(net.features, net.head, x, [20, 30])
    assert (res.maps - want).abs().max() < 1e-5


def test_no_memory_growth():
    net = TinyNet()
    m = cameras.CAMERAS(net, layer="features", scales=[16, 20])
    x = torch.randn(2, 3, 16, 16)

    def live():
        gc.collect()
        return sum(1 for o in gc.get_objects() if issubclass(type(o), torch.Tensor))

    for _ in range(5):
        m(x)
    base = live()
    for _ in range(200):
        m(x)
    assert live() <= base
    assert hook_count(net) == 0


def test_target_validation():
    net = TinyNet()
    m = cameras.CAMERAS(net, layer="features", scales=[16])
    x = torch.randn(2, 3, 16, 16)
    with pytest.raises(InputError, match="got 3 targets for a batch of 2"):
        m(x, target=[1, 2, 3])
    with pytest.raises(InputError, match="out of range"):
        m(x, target=5)
    with pytest.raises(InputError, match="out of range"):
        m(x, target=-1)
    with pytest.raises(InputError, match="integer"):
        m(x, target=torch.tensor([0.5, 1.0]))
    with pytest.raises(InputError, match="bool"):
        m(x, target=True)


def test_input_validation():
    m = cameras.CAMERAS(TinyNet(), layer="features", scales=[16])
    with pytest.raises(InputError, match="unsqueeze"):
        m(torch.randn(3, 16, 16))
    with pytest.raises(InputError, match="under 8 px"):
        m(torch.randn(1, 3, 4, 16))
    with pytest.raises(InputError, match="floating"):
        m(torch.zeros(1, 3, 16, 16, dtype=torch.uint8))
    with pytest.raises(InputError, match="Tensor"):
        m([[1.0]])


def test_option_validation():
    net = TinyNet()
    with pytest.raises(InputError, match="strictly increasing"):
        cameras.CAMERAS(net, scales=[324, 224])
    with pytest.raises(InputError, match="at least 8"):
        cameras.CAMERAS(net, scales=[4, 224])
    with pytest.raises(InputError, match="positive"):
        cameras.CAMERAS(net, steps=0)
    with pytest.raises(InputError, match="either scales or steps"):
        cameras.CAMERAS(net, scales=[224], steps=3)
    with pytest.raises(InputError, match="resample"):
        cameras.CAMERAS(net, resample="nearest")
    with pytest.raises(LayerError, match="unknown layer 'featurs'.*features"):
        cameras.CAMERAS(net, layer="featurs")
    with pytest.raises(LayerError, match="not a submodule"):
        cameras.CAMERAS(net, layer=nn.Conv2d(1, 1, 1))


def test_shared_module_layer_rejected():
    net = TinyNet()
    net.features[1] = net.act  # the same ReLU runs twice per forward
    with pytest.raises(LayerError, match="more than once"):
        cameras.CAMERAS(net, layer="act", scales=[16])(torch.randn(1, 3, 16, 16))


def test_unused_layer_gives_clear_error():
    net = TinyNet()
    net.unused = nn.Conv2d(3, 3, 1)
    with pytest.raises(LayerError, match="did not fire"):
        cameras.CAMERAS(net, layer="unused", scales=[16])(torch.randn(1, 3, 16, 16))


def test_scripted_refused_and_compiled_warns():
    net = TinyNet()
    with pytest.raises(InputError, match="TorchScript"):
        cameras.CAMERAS(torch.jit.script(net))

    class Wrapped(nn.Module):  # stands in for torch.compile's OptimizedModule
        def __init__(self, inner):
            super().__init__()
            self._orig_mod = inner

        def forward(self, x):
            return self._orig_mod(x)

    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        m = cameras.CAMERAS(Wrapped(net), layer="features", scales=[16])
    assert m.model is net and any("torch.compile" in str(x.message) for x in w)


def test_mixed_precision_layer_fused_in_float32():
    net = TinyNet().to(torch.bfloat16)
    x = torch.randn(1, 3, 16, 16, dtype=torch.bfloat16)
    res = cameras.CAMERAS(net, layer="features", scales=[16, 20])(x, target=0)
    assert res.maps.dtype == torch.float32 and torch.isfinite(res.maps).all()


@pytest.mark.parametrize("kind", ["blank", "one_pixel"])
def test_no_nan_on_degenerate_inputs(kind):
    net = TinyNet()
    x = torch.zeros(1, 3, 16, 16)
    if kind == "one_pixel":
        x[0, :, 7, 7] = 5.0
    res = cameras.CAMERAS(net, layer="features", scales=[16, 24, 32])(x)
    assert torch.isfinite(res.maps).all()
    assert res.maps.min() >= 0 and res.maps.max() <= 1


def test_two_threads_on_one_model_take_turns():
    """A call holds the model for its whole duration: a second thread's call on the same model waits, both maps
    equal the calls made one after the other, and the model is left as it was."""
    import threading

    from cameras.methods import CAMERAS, GradCAM

    torch.manual_seed(0)
    order: list[str] = []
    a_inside, b_inside = threading.Event(), threading.Event()

    class Gate(torch.nn.Module):  # the first thread's first pass stops here until the second has run (or 1 s)
        def forward(self, x):
            who = threading.current_thread().name
            order.append(who)
            if who == "a" and not a_inside.is_set():
                a_inside.set()
                b_inside.wait(1.0)
            elif who == "b":
                b_inside.set()
            return x

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(), Gate(),
                              torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten(), torch.nn.Linear(8, 4))
    with torch.no_grad():
        net[1].running_mean.uniform_(-0.5, 0.5)
        net[1].running_var.uniform_(0.5, 2.0)
    net.eval()
    xa, xb = torch.randn(1, 3, 16, 16), torch.randn(1, 3, 16, 16)
    a_cam, b_cam = CAMERAS(net, layer="4", scales=[16, 24]), GradCAM(net, layer="4")
    ref_a, ref_b = a_cam(xa, 1).maps, b_cam(xb, 2).maps
    ptrs = [p.data_ptr() for p in net.parameters()]
    order.clear()
    got = {}
    threads = [threading.Thread(target=lambda: got.__setitem__("a", a_cam(xa, 1).maps), name="a"),
               threading.Thread(target=lambda: (a_inside.wait(10), got.__setitem__("b", b_cam(xb, 2).maps)), name="b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert a_inside.is_set() and b_inside.is_set()
    assert order.index("b") > len(order) - 1 - order[::-1].index("a")  # every pass of a before the first of b
    assert torch.allclose(got["a"], ref_a, atol=1e-6) and torch.allclose(got["b"], ref_b, atol=1e-6)
    assert [p.data_ptr() for p in net.parameters()] == ptrs and not any("forward" in vars(m) for m in net.modules())
    assert all(p.requires_grad for p in net.parameters())


def test_model_lock_scope_parallel_models_guarded_state_and_cancel():
    """Calls on different models run at once (also CAMERAS with its folded batch norms); a frozen_eval block (the
    metrics', the attacks') holds its model like a call; a call waiting for its turn can be cancelled; the lock goes
    with its model."""
    import threading

    from cameras.core.errors import Cancelled
    from cameras.core.guard import frozen_eval, model_lock
    from cameras.methods import CAMERAS, GradCAM

    def convnet():
        net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1),
                            nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
        return net.eval()

    x = torch.randn(1, 3, 16, 16)
    a, b = convnet(), convnet()
    b_done, a_saw_b = threading.Event(), threading.Event()

    class Wait(nn.Module):
        def forward(self, t):
            if not a_saw_b.is_set():
                a_saw_b.set() if b_done.wait(10) else None
            return t

    a.insert(3, Wait())
    thread = threading.Thread(target=lambda: CAMERAS(a, layer="4", scales=[16, 24])(x, 0))
    thread.start()
    CAMERAS(b, layer="3", scales=[16, 24])(x, 0)  # runs while the call on a is inside its forward
    b_done.set()
    thread.join(20)
    assert a_saw_b.is_set()

    # a frozen_eval block holds the model: a call on it waits (model in train mode: its state stays the block's own)
    net = convnet().train()
    held, release, called = threading.Event(), threading.Event(), threading.Event()

    def hold():
        with frozen_eval(net):
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(10)
    caller = threading.Thread(target=lambda: (GradCAM(net, layer="3")(x, 0), called.set()))
    caller.start()
    assert not called.wait(0.3)  # waiting for the block
    release.set()
    holder.join(10)
    caller.join(20)
    assert called.is_set() and net.training and float(net[1].running_mean.abs().sum()) == 0  # no batch statistics
    assert int(net[1].num_batches_tracked) == 0

    # cancelled while waiting for its turn
    cam = GradCAM(net, layer="3")
    cam.stop = threading.Event()
    lock, outcome = model_lock(net), []
    lock.acquire()
    try:
        waiter = threading.Thread(target=lambda: outcome.append(pytest.raises(Cancelled, cam, x, 0)))
        waiter.start()
        cam.stop.set()
        waiter.join(5)
        assert not waiter.is_alive() and outcome
    finally:
        lock.release()

    # the lock and the channels-last copies live as long as their model
    from cameras.core import eager, guard

    gone = convnet()
    GradCAM(gone, layer="3")(x, 0)
    key = id(gone)
    assert key in guard._MODEL_LOCKS._values and key in eager._LAYOUT_COPIES._values
    del gone
    gc.collect()
    assert key not in guard._MODEL_LOCKS._values and key not in eager._LAYOUT_COPIES._values


def test_only_the_models_own_size_assertions_become_input_errors():
    """A model asserting its input size gets the "refused an input size" advice; an assertion of the caller's own
    target function about a shape is left as it is (it was reported as the model refusing the input)."""
    class Fixed(TinyNet):
        def forward(self, x):
            assert x.shape[-1] == 16, "input size must be 16"
            return super().forward(x)

    with pytest.raises(InputError, match="Fixed refused an input size"):
        cameras.CAMERAS(Fixed(), layer="features", scales=[16, 24])(torch.randn(1, 3, 16, 16), 0)

    def picky(out):
        assert out.shape[1] == 10, "shape mismatch: expected 10 classes"
        return out[:, 0]

    with pytest.raises(AssertionError, match="expected 10 classes"):
        cameras.GradCAM(TinyNet(), layer="features")(torch.randn(1, 3, 16, 16), picky)


class EditsItsInput(TinyNet):
    """A model that normalises its input in place (``x.sub_``), as some users' wrappers do."""

    in_place = True

    def forward(self, x):
        x = x.sub_(0.5) if self.in_place else x - 0.5
        return super().forward(x)


FAST = {"rise": {"n_masks": 16, "batch_size": 8}, "extremal": {"iterations": 3}, "cameras": {"scales": [16, 24]}}


@pytest.mark.parametrize("name", cameras.available_methods())
def test_a_model_that_edits_its_input_changes_neither_the_callers_tensor_nor_the_map(name):
    """Every forward gets a copy: the caller's x stays as it was, a method that reuses x after a forward
    (RISE's masked copies, CAMERAS's border) uses the image it was given, and the input gradient of a model
    whose first operation is in place can be taken (Gradient raised on the leaf tensor)."""
    edits, pure = EditsItsInput(), EditsItsInput()
    pure.in_place = False
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    x0 = x.clone()
    opts = {"layer": "features", **FAST.get(name, {})} if name not in ("gradient", "rise", "extremal") \
        else FAST.get(name, {})
    got = cameras.build_method(name, edits, **opts)(x, target=[0, 1])
    assert torch.equal(x, x0)
    want = cameras.build_method(name, pure, **opts)(x, target=[0, 1])
    assert torch.allclose(got.maps, want.maps, atol=1e-6)
    if name == "cameras":  # the border too: x is reused for the padded copy after the clean forward
        m = cameras.CAMERAS(edits, layer="features", scales=[16, 24], border_pad=0.25)
        m2 = cameras.CAMERAS(pure, layer="features", scales=[16, 24], border_pad=0.25)
        assert torch.allclose(m(x, target=[0, 1]).maps, m2(x, target=[0, 1]).maps, atol=1e-6)
        assert torch.equal(x, x0)


def test_extremal_runs_a_half_precision_model():
    net = TinyNet().to(torch.bfloat16)
    x = torch.randn(1, 3, 16, 16, dtype=torch.bfloat16)
    res = cameras.ExtremalPerturbation(net, iterations=3)(x, target=1)  # the perturbed input was float32: raised
    assert res.maps.dtype == torch.float32 and torch.isfinite(res.maps).all()
    assert 0 <= float(res.maps.min()) and float(res.maps.max()) <= 1


def test_metrics_give_a_model_that_edits_its_input_copies():
    from cameras.metrics import confidence_change, insertion_deletion
    edits, pure = EditsItsInput(), EditsItsInput()
    pure.in_place = False
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    x0, maps = x.clone(), torch.rand(1, 16, 16, generator=torch.Generator().manual_seed(5))
    got, want = (insertion_deletion(m, x, maps, target=2, step=32) for m in (edits, pure))
    assert torch.equal(x, x0)
    assert torch.allclose(got["insertion"], want["insertion"]) and torch.allclose(got["deletion"], want["deletion"])
    assert torch.allclose(confidence_change(edits, x, maps, target=2)["masked"],
                          confidence_change(pure, x, maps, target=2)["masked"])


def test_a_layer_the_score_does_not_depend_on_gives_a_clear_error():
    class AuxBranch(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.aux, self.fc = nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 1), nn.Linear(4, 3)

        def forward(self, x):
            a = self.conv(x)
            self.aux(a)  # an auxiliary branch whose output is dropped
            return self.fc(a.mean((2, 3)))

    net, x = AuxBranch(), torch.rand(1, 3, 16, 16)
    for method in (cameras.GradCAM(net, layer="aux"), cameras.CAMERAS(net, layer="aux", scales=[16, 20])):
        with pytest.raises(LayerError, match="layer 'aux' ran, but the score does not depend on it"):
            method(x, target=1)
    with pytest.raises(LayerError, match="'aux'"):  # one of two layers unused
        cameras.NormGrad(net, layer=["conv", "aux"])(x, target=1)
    with pytest.raises(LayerError, match="the score does not depend on it"):  # a target that ignores the output
        cameras.GradCAM(net, layer="conv")(x, target=lambda out: torch.ones(out.shape[0]))


def test_wrong_channels_or_dtype_are_named_not_raw_torch_errors():
    net = TinyNet()
    for method in (cameras.GradCAM(net, layer="features"), cameras.Gradient(net), cameras.RISE(net, n_masks=8)):
        with pytest.raises(InputError, match="refused an input of 4 channels .*built for"):
            method(torch.rand(1, 4, 16, 16), target=1)
        with pytest.raises(InputError, match="refused a float64 input .*model's dtype"):
            method(torch.rand(1, 3, 16, 16, dtype=torch.float64), target=1)


def test_a_dtype_clash_inside_the_model_is_not_blamed_on_x():
    """x has the weights' dtype; a float64 layer deeper in is the model's own affair: torch's error stays."""
    net = TinyNet()
    net.features[2].double()
    with pytest.raises(RuntimeError) as info:
        cameras.GradCAM(net, layer="features")(torch.rand(1, 3, 16, 16), target=1)
    assert not isinstance(info.value, InputError)


def test_metrics_run_a_scripted_model():
    from cameras.metrics import insertion_deletion
    net = torch.jit.script(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                         nn.Linear(4, 3)).eval())
    r = insertion_deletion(net, torch.rand(1, 3, 8, 8), torch.rand(1, 8, 8), target=1, step=16)
    assert tuple(r["insertion"].shape) == (1, 5)  # hooks are refused by ScriptModules: no input copies for them


def test_counts_take_any_whole_number():
    import numpy as np
    net = TinyNet()
    assert cameras.RISE(net, n_masks=np.int64(8), seed=np.int64(3)).n_masks == 8
    assert cameras.ExtremalPerturbation(net, step=7.0).step == 7  # from JSON or --set step=7.0
    assert cameras.CAMERAS(net, layer="features", steps=np.int64(2), max_size=448.0).scales == [224, 448]
    with pytest.raises(InputError, match="step must be a positive integer, got 7.5"):
        cameras.ExtremalPerturbation(net, step=7.5)
    with pytest.raises(InputError, match="seed must be an integer"):
        cameras.RISE(net, seed=np.bool_(True))


def test_metrics_and_attacks_use_the_whole_number_their_checks_return():
    import numpy as np

    from cameras.attacks import pgd
    from cameras.metrics import insertion_deletion
    net, x = TinyNet(), torch.rand(1, 3, 16, 16)
    r = insertion_deletion(net, x, torch.rand(1, 16, 16), target=1, step=64.0, batch_size=np.int64(2))
    assert tuple(r["insertion"].shape) == (1, 5)  # 7.0 passed the check but then failed in range()
    assert int(pgd(net, x, target=2, steps=2.0).steps[0]) <= 2
