"""The baselines fst is timed against, written the way their authors wrote them.

1. pytorch/examples' fast_neural_style ("PE"; neural_style/neural_style.py, transformer_net.py,
   vgg.py, utils.py): its TransformerNet (Johnson's width 32), its Vgg16 (four slices ending at
   relu1_2, relu2_2, relu3_3, relu4_3), its gram_matrix and normalize_batch, its training step
   (style Grams computed once before the loop; the output and the content through Vgg16 in two
   separate full passes; MSE terms; Adam) and its eval path (load the state_dict, no_grad, eager).
2. The PyTorch tutorial "Neural Transfer Using PyTorch" (Gatys et al.; "tutorial"): loss modules
   inserted after the chosen layers of a copy of the VGG features, every target (content features,
   style Grams) computed once when the model is built, the pixels optimised directly by L-BFGS with
   a clamp in the closure.

So that each computes the same loss value as fst for the same inputs (the bench checks it, see
fst/bench/check.py), three things differ from the authors' files, none of which changes how the
work is organised:
  a. weights and preprocessing: fst's loss network (the same VGG16 weights, its convention's
     channel order, mean and scale) instead of torchvision's download; images in [0, 1] (PE
     multiplies by 255 and normalize_batch divides again: no work either way);
  b. the loss fst defines (fst/losses.py): each term divided by its target's energy, style layers
     weighted 1/4 each, a total-variation term, and the images reflect-padded by the border margin
     before VGG with every feature cropped back to the image;
  c. bf16 rows: autocast around the transformer's forward and the VGG calls (what fst train does
     with bf16 on the CPU), the output and features back to float32 before the loss's terms.
PE hard-codes relu2_2 for content and those four style layers; the bench uses fst's defaults,
which are the same layers.
"""

from __future__ import annotations

import contextlib
import sys
from collections import namedtuple

import torch
import torch.nn.functional as F
from torch import nn

VggOutputs = namedtuple("VggOutputs", ["relu1_2", "relu2_2", "relu3_3", "relu4_3"])
PE_SLICE_ENDS = (4, 9, 16, 23)  # vgg16().features indices after relu1_2, relu2_2, relu3_3, relu4_3
PE_CHANNELS = 32


# ---------------------------------------------------------------- PE: transformer_net.py


class ConvLayer(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride):
        super().__init__()
        self.reflection_pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv2d = nn.Conv2d(in_channels, out_channels, kernel_size, stride)

    def forward(self, x):
        return self.conv2d(self.reflection_pad(x))


class ResidualBlock(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, kernel_size=3, stride=1)
        self.in1 = nn.InstanceNorm2d(channels, affine=True)
        self.conv2 = ConvLayer(channels, channels, kernel_size=3, stride=1)
        self.in2 = nn.InstanceNorm2d(channels, affine=True)
        self.relu = nn.ReLU()

    def forward(self, x):
        out = self.relu(self.in1(self.conv1(x)))
        return self.in2(self.conv2(out)) + x


class UpsampleConvLayer(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride, upsample=None):
        super().__init__()
        self.upsample_layer = nn.Upsample(mode="nearest", scale_factor=upsample) if upsample else None
        self.reflection_pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv2d = nn.Conv2d(in_channels, out_channels, kernel_size, stride)

    def forward(self, x):
        x_in = self.upsample_layer(x) if self.upsample_layer is not None else x
        return self.conv2d(self.reflection_pad(x_in))


class TransformerNet(nn.Module):
    """PE's network: Johnson's width 32, 5 residual blocks, no output non-linearity."""

    def __init__(self):
        super().__init__()
        self.conv1, self.in1 = ConvLayer(3, 32, kernel_size=9, stride=1), nn.InstanceNorm2d(32, affine=True)
        self.conv2, self.in2 = ConvLayer(32, 64, kernel_size=3, stride=2), nn.InstanceNorm2d(64, affine=True)
        self.conv3, self.in3 = ConvLayer(64, 128, kernel_size=3, stride=2), nn.InstanceNorm2d(128, affine=True)
        self.res1, self.res2, self.res3, self.res4, self.res5 = (ResidualBlock(128) for _ in range(5))
        self.deconv1 = UpsampleConvLayer(128, 64, kernel_size=3, stride=1, upsample=2)
        self.in4 = nn.InstanceNorm2d(64, affine=True)
        self.deconv2 = UpsampleConvLayer(64, 32, kernel_size=3, stride=1, upsample=2)
        self.in5 = nn.InstanceNorm2d(32, affine=True)
        self.deconv3 = ConvLayer(32, 3, kernel_size=9, stride=1)
        self.relu = nn.ReLU()

    def forward(self, X):
        y = self.relu(self.in1(self.conv1(X)))
        y = self.relu(self.in2(self.conv2(y)))
        y = self.relu(self.in3(self.conv3(y)))
        y = self.res5(self.res4(self.res3(self.res2(self.res1(y)))))
        y = self.relu(self.in4(self.deconv1(y)))
        y = self.relu(self.in5(self.deconv2(y)))
        return self.deconv3(y)


# ---------------------------------------------------------------- PE: vgg.py and utils.py


class Vgg16(nn.Module):
    """PE's Vgg16: four slices of the VGG16 features, all four activations from one forward.
    (a) the layers are fst's loss network's; (b) `pad`: reflect-pad, then crop each output."""

    def __init__(self, loss_net, pad: int):
        super().__init__()
        features = list(loss_net.features)
        starts = (0,) + PE_SLICE_ENDS[:-1]
        self.slice1, self.slice2, self.slice3, self.slice4 = (nn.Sequential(*features[a:b]) for a, b in zip(starts, PE_SLICE_ENDS))
        self.requires_grad_(False)
        self.pad = pad

    def forward(self, X):
        p = self.pad
        h_relu1_2 = self.slice1(F.pad(X, (p, p, p, p), mode="reflect") if p else X)
        h_relu2_2 = self.slice2(h_relu1_2)
        h_relu3_3 = self.slice3(h_relu2_2)
        h_relu4_3 = self.slice4(h_relu3_3)
        crops = (p, p // 2, p // 4, p // 8)  # the margin after 0, 1, 2, 3 poolings
        return VggOutputs(*(h[..., c : h.shape[-2] - c, c : h.shape[-1] - c] if c else h
                            for h, c in zip((h_relu1_2, h_relu2_2, h_relu3_3, h_relu4_3), crops)))


def gram_matrix(y):
    (b, ch, h, w) = y.size()
    features = y.reshape(b, ch, w * h)  # PE: .view (the cropped features are not contiguous)
    return features.bmm(features.transpose(1, 2)) / (ch * h * w)


def normalize_batch(batch, loss_net):
    """(a) the loss network's convention on [0, 1] images (PE: ImageNet mean/std on 0..255 / 255)."""
    return (batch[:, loss_net.perm] - loss_net.mean) / loss_net.std


def _precision(device_type: str, amp_dtype):
    """(c) autocast around the transformer's and VGG's calls; None: float32 throughout."""
    return torch.autocast(device_type, dtype=amp_dtype) if amp_dtype is not None else contextlib.nullcontext()


# ---------------------------------------------------------------- PE: neural_style.py train()


class PETraining:
    """PE's train(): the set-up before the loop (Adam, Vgg16, the style's Grams once), and one
    iteration of its loop as step(x). loss(y, x) is the loop's loss lines alone (for the check)."""

    def __init__(self, transformer, loss_net, style, config, batch_size: int, lr: float = 1e-3, amp_dtype=None):
        if config.content_layer != "relu2_2" or set(config.style_layers) != set(VggOutputs._fields):
            raise ValueError("PE's loss uses relu2_2 and relu1_2..relu4_3: run it with fst's default layers")
        self.transformer, self.loss_net, self.config, self.amp_dtype = transformer, loss_net, config, amp_dtype
        self.optimizer = torch.optim.Adam(transformer.parameters(), lr)
        self.mse_loss = nn.MSELoss()
        self.vgg = Vgg16(loss_net, config.border_pad)
        total = sum(config.style_layers.values())
        self.layer_weights = [config.style_layers[name] / total for name in VggOutputs._fields]  # (b)
        style = style.repeat(batch_size, 1, 1, 1)
        with torch.no_grad():
            features_style = self.features(style)
        self.gram_style = [gram_matrix(y) for y in features_style]

    def features(self, images):
        with _precision(images.device.type, self.amp_dtype):
            out = self.vgg(normalize_batch(images, self.loss_net))
        return VggOutputs(*(f.float() for f in out))  # (c): no-op in float32

    def loss(self, y, x):
        cfg, n_batch = self.config, len(x)
        features_y = self.features(y)
        features_x = self.features(x)
        content_loss = cfg.content_weight * self.mse_loss(features_y.relu2_2, features_x.relu2_2) / features_x.relu2_2.pow(2).mean()
        style_loss = 0.0
        for ft_y, gm_s, w in zip(features_y, self.gram_style, self.layer_weights):
            gm_y = gram_matrix(ft_y)
            style_loss += w * self.mse_loss(gm_y, gm_s[:n_batch, :, :]) / gm_s[0].pow(2).mean()  # (b)
        style_loss *= cfg.style_weight
        tv = ((y[:, :, 1:, :] - y[:, :, :-1, :]).pow(2).mean() + (y[:, :, :, 1:] - y[:, :, :, :-1]).pow(2).mean())
        return content_loss + style_loss + cfg.tv_weight * tv  # (b) the TV term

    def step(self, x) -> float:
        self.optimizer.zero_grad()
        with _precision(x.device.type, self.amp_dtype):
            y = self.transformer(x)
        total_loss = self.loss(y.float(), x)  # (c): no-op in float32
        total_loss.backward()
        self.optimizer.step()
        return total_loss.item()  # PE: agg_content_loss += content_loss.item() ...


class PEPhotos(torch.utils.data.Dataset):
    """PE's training data: datasets.ImageFolder(args.dataset, transform) with transforms.Compose([
    Resize(image_size), CenterCrop(image_size), ToTensor(), Lambda(lambda x: x.mul(255))]), its
    default loader (PIL, RGB); here over a list of paths (the photos a run trains on, in the sorted
    order ImageFolder reads a folder in) and (a) without the mul(255). Items: ((3, S, S) [0, 1], 0)."""

    def __init__(self, paths: list[str], image_size: int):
        from torchvision import transforms

        self.paths = paths
        self.transform = transforms.Compose([transforms.Resize(image_size), transforms.CenterCrop(image_size),
                                             transforms.ToTensor()])

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        from PIL import Image

        with open(self.paths[index], "rb") as f:
            return self.transform(Image.open(f).convert("RGB")), 0


def pe_train_loader(paths: list[str], image_size: int, batch_size: int):
    """PE's `train_loader = DataLoader(train_dataset, batch_size=args.batch_size)`: no shuffle, no
    worker processes, the last batch smaller."""
    return torch.utils.data.DataLoader(PEPhotos(paths, image_size), batch_size=batch_size)


# ---------------------------------------------------------------- PE: neural_style.py stylize()


def pe_stylize(style_model, content_image):
    """PE's eval path on one image: (1, 3, H, W) -> the output on the CPU, eager, float32."""
    with torch.no_grad():
        return style_model(content_image).cpu()


def pe_eval_command() -> None:
    """PE's `neural_style.py eval` as a whole command: its imports (torch, torchvision's
    transforms), PIL in, the state_dict into the network, eager float32 under no_grad, PIL out.
    argv: PHOTO MODEL OUTPUT NETWORK, NETWORK 'pe' (its TransformerNet, a state_dict) or 'fst'
    (fst's network from an fst .pth, loaded as PE loads its own: torch.load + load_state_dict).
    Run as `python -c "from fst.bench.baselines import pe_eval_command; pe_eval_command()" ...`."""
    photo, model, output, network = sys.argv[1:5]
    import numpy as np
    from PIL import Image
    from torchvision import transforms

    content_image = transforms.ToTensor()(Image.open(photo).convert("RGB")).unsqueeze(0)
    if network == "pe":
        style_model = TransformerNet()
        style_model.load_state_dict(torch.load(model, weights_only=True))
    else:
        from fst.transformer import TransformerNet as FstNet

        state = torch.load(model, weights_only=True)
        style_model = FstNet(**state["meta"]["architecture"])
        style_model.load_state_dict(state["model"])
    output_image = pe_stylize(style_model, content_image)[0]
    img = (output_image.clamp(0, 1) * 255).numpy().transpose(1, 2, 0).astype(np.uint8)  # PE: clamp(0, 255)
    Image.fromarray(img).save(output)


# ---------------------------------------------------------------- the PyTorch tutorial (Gatys)


class Normalization(nn.Module):
    """The tutorial's first module: (a) the loss network's convention; (b) the border margin."""

    def __init__(self, loss_net, pad: int):
        super().__init__()
        self.loss_net, self.pad = loss_net, pad

    def forward(self, img):
        p = self.pad
        return normalize_batch(F.pad(img, (p, p, p, p), mode="reflect") if p else img, self.loss_net)


def _crop(x, c):
    return x[..., c : x.shape[-2] - c, c : x.shape[-1] - c] if c else x


class ContentLoss(nn.Module):
    def __init__(self, target, crop: int, weight: float):
        super().__init__()
        self.crop, self.weight = crop, weight
        self.target = _crop(target, crop).detach()
        self.energy = self.target.pow(2).mean()  # (b)

    def forward(self, input):
        self.loss = self.weight * F.mse_loss(_crop(input, self.crop), self.target) / self.energy
        return input


class StyleLoss(nn.Module):
    def __init__(self, target_feature, crop: int, weight: float):
        super().__init__()
        self.crop, self.weight = crop, weight
        self.target = gram_matrix(_crop(target_feature, crop)).detach()
        self.energy = self.target.pow(2).mean()  # (b)

    def forward(self, input):
        G = gram_matrix(_crop(input, self.crop))
        self.loss = self.weight * F.mse_loss(G, self.target) / self.energy
        return input


class GatysTutorial:
    """get_style_model_and_losses(): a new nn.Sequential of the VGG layers with a loss module after
    each chosen layer, built up to the last one; the targets computed as it is built (once)."""

    def __init__(self, loss_net, style_img, content_img, config):
        from fst.vgg import LAYER_NAMES

        self.config = config
        total = sum(config.style_layers.values())
        last = max(LAYER_NAMES.index(n) for n in set(config.style_layers) | {config.content_layer})
        self.model = nn.Sequential(Normalization(loss_net, config.border_pad))
        layers = nn.Sequential(self.model[0])  # the same layers without loss modules: the style image's
        self.content_losses, self.style_losses = [], []  # size differs from the content's (the tutorial's do not)
        crop = config.border_pad
        for name, layer in zip(LAYER_NAMES[: last + 1], list(loss_net.features)[: last + 1]):
            if isinstance(layer, nn.MaxPool2d):
                crop //= 2
            layer = nn.ReLU(inplace=False) if isinstance(layer, nn.ReLU) else layer
            self.model.add_module(name, layer)
            layers.add_module(name, layer)
            with torch.no_grad():
                if name == config.content_layer:
                    loss = ContentLoss(layers(content_img), crop, config.content_weight)
                    self.model.add_module(f"content_loss_{name}", loss)
                    self.content_losses.append(loss)
                if name in config.style_layers:
                    weight = config.style_weight * config.style_layers[name] / total  # (b)
                    loss = StyleLoss(layers(style_img), crop, weight)
                    self.model.add_module(f"style_loss_{name}", loss)
                    self.style_losses.append(loss)
        self.model.requires_grad_(False)

    def loss(self, input_img):
        """The closure's loss lines (before backward): the model's loss modules' sum, plus (b) TV."""
        self.model(input_img)
        style_score = sum(sl.loss for sl in self.style_losses)
        content_score = sum(cl.loss for cl in self.content_losses)
        y = input_img
        tv = (y[:, :, 1:, :] - y[:, :, :-1, :]).pow(2).mean() + (y[:, :, :, 1:] - y[:, :, :, :-1]).pow(2).mean()
        return style_score + content_score + self.config.tv_weight * tv

    def closure_for(self, input_img, optimizer):
        """run_style_transfer()'s closure: clamp in place, zero_grad, loss, backward."""

        def closure():
            with torch.no_grad():
                input_img.clamp_(0, 1)
            optimizer.zero_grad()
            loss = self.loss(input_img)
            loss.backward()
            return loss

        return closure
