import torch, torchvision, cameras
dev = torch.device("cuda")
for name, net in (("inception_v3", torchvision.models.inception_v3(num_classes=1000, aux_logits=False, init_weights=False)),
                  ("resnet50", torchvision.models.resnet50())):
    net = net.eval().to(dev)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0)).to(dev)
    with torch.no_grad(): t = net(x).argmax(1)
    ref = cameras.CAMERAS(net)(x, target=t).maps
    for amp in ("bf16", "fp16"):
        m = cameras.CAMERAS(net, amp=amp)(x, target=t).maps
        print(name, amp, "max abs diff", round((m - ref).abs().max().item(), 4), "mean", round((m - ref).abs().mean().item(), 5), flush=True)
