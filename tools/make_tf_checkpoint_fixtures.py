"""TensorFlow checkpoints laid out as StackGAN's CUB-fine-tuned Inception, for ``tests/test_inception_cub.py``.

StackGAN's evaluation network is TF-Slim's ``inception_v3`` (``inception/slim/inception_model.py`` of
``tensorflow/models``) fine-tuned by the ``inception`` training code, which saves every global variable:
the weights, slim's batch-norm ``beta`` / ``moving_mean`` / ``moving_variance``, their exponential moving
averages (``NAME/ExponentialMovingAverage``), the RMSProp slots and ``global_step``. This script builds
that graph with TensorFlow's own variable scopes (so TensorFlow, not t2igan, names the variables: ``Conv``,
``Conv_1``, ... within a branch), with every width divided by ``--width-divisor``, fills each variable
with values the tests can recompute (variable ``i`` in sorted name order holds
``i + (arange(size) % 97) / 128``; ``global_step`` = 5000), and saves it in both formats:

    OUT/v1/model.ckpt                                     (tf.train.Saver write_version=V1, one table)
    OUT/v2/model.ckpt.index, model.ckpt.data-00000-of-00001   (V2, the default since TensorFlow 0.12)

so the package's pure-Python reader (``t2igan.tf_checkpoint``) is tested on bytes TensorFlow wrote.
With ``--full`` (width divisor 1) it instead draws random weights (different ones for the moving
averages), saves ``OUT/full/model.ckpt`` (V1) and, restoring the averages as StackGAN's
``inception_score.py`` does (``ExponentialMovingAverage(0.9999).variables_to_restore()``), writes the
logits TensorFlow computes for a few random images to ``OUT/full/logits.npz``: the reference for
checking ``t2igan convert inception-cub`` end to end.

    python tools/make_tf_checkpoint_fixtures.py tests/fixtures/tf_checkpoint --width-divisor 64
    python tools/make_tf_checkpoint_fixtures.py runs/cub_full --full
    python tools/make_tf_checkpoint_fixtures.py tests/fixtures/tf_resize_bilinear.npz --resize

Needs TensorFlow >= 2 (``tf.compat.v1`` graph mode), which t2igan itself never imports.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import tensorflow as tf

v1 = tf.compat.v1
NUM_CLASSES = 51  # 50 CUB test classes + background, as StackGAN's birds model


class SlimInceptionV3:
    """TF-Slim inception_v3's layers and variable scopes (conv + batch norm without scale + ReLU)."""

    def __init__(self, divisor: int):
        self.divisor = divisor

    def depth(self, channels: int) -> int:
        return max(1, channels // self.divisor)

    def conv(self, x, channels, kernel, stride=1, padding="SAME", scope=None):
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        with v1.variable_scope(scope, default_name="Conv"):
            w = v1.get_variable("weights", [kh, kw, int(x.shape[-1]), self.depth(channels)])
            y = tf.nn.conv2d(x, w, [1, stride, stride, 1], padding)
            with v1.variable_scope(None, default_name="BatchNorm"):
                n = y.shape[-1:]
                beta = v1.get_variable("beta", n, initializer=v1.zeros_initializer())
                stats = [v1.GraphKeys.GLOBAL_VARIABLES, v1.GraphKeys.MOVING_AVERAGE_VARIABLES]
                mean = v1.get_variable("moving_mean", n, initializer=v1.zeros_initializer(), trainable=False,
                                       collections=stats)
                var = v1.get_variable("moving_variance", n, initializer=v1.ones_initializer(), trainable=False,
                                      collections=stats)
            return tf.nn.relu(tf.nn.batch_normalization(y, mean, var, beta, None, 0.001))

    def fc(self, x, units, scope=None):
        with v1.variable_scope(scope, default_name="FC"):
            w = v1.get_variable("weights", [int(x.shape[-1]), units])
            b = v1.get_variable("biases", [units], initializer=v1.zeros_initializer())
            return tf.matmul(x, w) + b

    @staticmethod
    def avg(x, k=3, stride=1, padding="SAME"):
        return tf.nn.avg_pool2d(x, k, stride, padding)  # SAME: TensorFlow leaves the padding out of the mean

    @staticmethod
    def maxpool(x, k=3, stride=2, padding="VALID"):
        return tf.nn.max_pool2d(x, k, stride, padding)

    def block_35(self, x, scope, pool_channels):
        c = self.conv
        with v1.variable_scope(scope):
            with v1.variable_scope("branch1x1"):
                b1 = c(x, 64, 1)
            with v1.variable_scope("branch5x5"):
                b5 = c(c(x, 48, 1), 64, 5)
            with v1.variable_scope("branch3x3dbl"):
                b3 = c(c(c(x, 64, 1), 96, 3), 96, 3)
            with v1.variable_scope("branch_pool"):
                bp = c(self.avg(x), pool_channels, 1)
            return tf.concat([b1, b5, b3, bp], 3)

    def block_17(self, x, scope, c7):
        c = self.conv
        with v1.variable_scope(scope):
            with v1.variable_scope("branch1x1"):
                b1 = c(x, 192, 1)
            with v1.variable_scope("branch7x7"):
                b7 = c(c(c(x, c7, 1), c7, (1, 7)), 192, (7, 1))
            with v1.variable_scope("branch7x7dbl"):
                d = c(c(c(c(c(x, c7, 1), c7, (7, 1)), c7, (1, 7)), c7, (7, 1)), 192, (1, 7))
            with v1.variable_scope("branch_pool"):
                bp = c(self.avg(x), 192, 1)
            return tf.concat([b1, b7, d, bp], 3)

    def block_8(self, x, scope):
        c = self.conv
        with v1.variable_scope(scope):
            with v1.variable_scope("branch1x1"):
                b1 = c(x, 320, 1)
            with v1.variable_scope("branch3x3"):
                h = c(x, 384, 1)
                b3 = tf.concat([c(h, 384, (1, 3)), c(h, 384, (3, 1))], 3)
            with v1.variable_scope("branch3x3dbl"):
                h = c(c(x, 448, 1), 384, 3)
                d = tf.concat([c(h, 384, (1, 3)), c(h, 384, (3, 1))], 3)
            with v1.variable_scope("branch_pool"):
                bp = c(self.avg(x), 192, 1)
            return tf.concat([b1, b3, d, bp], 3)

    def __call__(self, images, num_classes):
        c = self.conv
        x = c(images, 32, 3, stride=2, padding="VALID", scope="conv0")
        x = c(x, 32, 3, padding="VALID", scope="conv1")
        x = c(x, 64, 3, padding="SAME", scope="conv2")
        x = self.maxpool(x)
        x = c(x, 80, 1, padding="VALID", scope="conv3")
        x = c(x, 192, 3, padding="VALID", scope="conv4")
        x = self.maxpool(x)
        x = self.block_35(x, "mixed_35x35x256a", 32)
        x = self.block_35(x, "mixed_35x35x288a", 64)
        x = self.block_35(x, "mixed_35x35x288b", 64)
        with v1.variable_scope("mixed_17x17x768a"):
            with v1.variable_scope("branch3x3"):
                b3 = c(x, 384, 3, stride=2, padding="VALID")
            with v1.variable_scope("branch3x3dbl"):
                d = c(c(c(x, 64, 1), 96, 3), 96, 3, stride=2, padding="VALID")
            x = tf.concat([b3, d, self.maxpool(x)], 3)
        for scope, c7 in (("mixed_17x17x768b", 128), ("mixed_17x17x768c", 160), ("mixed_17x17x768d", 160),
                          ("mixed_17x17x768e", 192)):
            x = self.block_17(x, scope, c7)
        with v1.variable_scope("aux_logits"):  # training-only side head: present in the checkpoint
            a = self.avg(x, 5, 3, "VALID")
            a = c(a, 128, 1, scope="proj")
            a = c(a, 768, (int(a.shape[1]), int(a.shape[2])), padding="VALID")
            self.fc(tf.reshape(a, [-1, int(np.prod(a.shape[1:]))]), num_classes)
        with v1.variable_scope("mixed_17x17x1280a"):
            with v1.variable_scope("branch3x3"):
                b3 = c(c(x, 192, 1), 320, 3, stride=2, padding="VALID")
            with v1.variable_scope("branch7x7x3"):
                b7 = c(c(c(c(x, 192, 1), 192, (1, 7)), 192, (7, 1)), 192, 3, stride=2, padding="VALID")
            x = tf.concat([b3, b7, self.maxpool(x)], 3)
        x = self.block_8(x, "mixed_8x8x2048a")
        x = self.block_8(x, "mixed_8x8x2048b")
        with v1.variable_scope("logits"):
            x = self.avg(x, (int(x.shape[1]), int(x.shape[2])), 1, "VALID")
            return self.fc(tf.reshape(x, [-1, int(x.shape[-1])]), num_classes, scope="logits")


def build_training_graph(divisor: int):
    """The network, the moving averages and RMSProp, as the ``inception`` fine-tuning code saves them."""
    images = v1.placeholder(tf.float32, [2, 299, 299, 3], name="inputs")
    step = v1.train.get_or_create_global_step()
    logits = SlimInceptionV3(divisor)(images, NUM_CLASSES)
    loss = tf.reduce_mean(logits)
    v1.train.RMSPropOptimizer(0.01, decay=0.9, momentum=0.9, epsilon=1.0).minimize(loss, global_step=step)
    ema = v1.train.ExponentialMovingAverage(0.9999, step)
    ema.apply(v1.trainable_variables() + v1.moving_average_variables())


def pattern_values(variables) -> list[np.ndarray]:
    values = []
    names = sorted(v.op.name for v in variables)
    for v in variables:
        i = names.index(v.op.name)
        shape = v.shape.as_list()
        if v.dtype.base_dtype == tf.int64:
            values.append(np.array(5000, np.int64))
        else:
            values.append((i + (np.arange(int(np.prod(shape))) % 97) / 128).astype(np.float32).reshape(shape))
    return values


def random_values(variables, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    values = []
    for v in variables:
        name, shape = v.op.name, v.shape.as_list()
        if v.dtype.base_dtype == tf.int64:
            values.append(np.array(5000, np.int64))
        elif name.endswith(("weights", "weights/ExponentialMovingAverage")) and len(shape) == 4:
            values.append((rng.standard_normal(shape) * np.sqrt(2.0 / np.prod(shape[:3]))).astype(np.float32))
        elif "moving_variance" in name:
            values.append((1 + 0.2 * rng.random(shape)).astype(np.float32))
        else:  # beta, moving_mean, fc weights and biases, optimiser slots
            values.append((0.05 * rng.standard_normal(shape)).astype(np.float32))
    return values


def save(values_fn, divisor: int, targets: list[tuple[Path, int]]) -> None:
    graph = tf.Graph()
    with graph.as_default():
        build_training_graph(divisor)
        variables = v1.global_variables()
        feeds = {}
        for var, value in zip(variables, values_fn(variables)):
            feeds[v1.placeholder(var.dtype.base_dtype, value.shape)] = (var, value)
        assign = tf.group(*[v1.assign(var, p) for p, (var, _) in feeds.items()])
        with v1.Session() as sess:
            sess.run(assign, {p: value for p, (_, value) in feeds.items()})
            for path, version in targets:
                path.parent.mkdir(parents=True, exist_ok=True)
                v1.train.Saver(variables, write_version=version).save(sess, str(path), write_meta_graph=False)
                print(f"wrote {path} ({'V1' if version == v1.train.SaverDef.V1 else 'V2'}, {len(variables)} variables)")


def stackgan_logits(checkpoint: Path, images: np.ndarray) -> np.ndarray:
    """Logits of the inference graph restored as StackGAN's ``inception_score.py`` restores it."""
    graph = tf.Graph()
    with graph.as_default():
        inputs = v1.placeholder(tf.float32, images.shape, name="inputs")
        logits = SlimInceptionV3(1)(inputs, NUM_CLASSES)
        restore = v1.train.ExponentialMovingAverage(0.9999).variables_to_restore()
        with v1.Session() as sess:
            v1.train.Saver(restore).restore(sess, str(checkpoint))
            return sess.run(logits, {inputs: images})


RESIZE_CASES = [((2, 2), (3, 3)), ((3, 5), (7, 4)), ((5, 7), (2, 3)), ((4, 4), (4, 4)), ((64, 48), (299, 299)),
                ((256, 256), (299, 299)), ((300, 310), (299, 299))]


def resize_input(height: int, width: int) -> np.ndarray:
    """The test image of a resize case (1, H, W, 3): 8-bit values from a formula the tests repeat."""
    y, x, c = np.arange(height)[:, None, None], np.arange(width)[None, :, None], np.arange(3)
    return ((7 * y + 13 * x + 29 * c + (y * x) % 17) % 256).astype(np.float32)[None]


def resize_fixture(path: Path) -> None:
    """TF1 ``resize_bilinear`` (``align_corners=False``, no half-pixel centres: the 2015 Inception graph's
    resize) of :func:`resize_input` images, for ``tests/test_is_protocols.py``. Outputs larger than 16 px
    are kept on the rows and columns ``rows{k}`` / ``cols{k}`` (every 11th and the last) to stay small."""
    arrays = {}
    for k, (src, dst) in enumerate(RESIZE_CASES):
        out = np.asarray(v1.image.resize_bilinear(resize_input(*src), dst, align_corners=False,
                                                  half_pixel_centers=False))
        rows, cols = (np.r_[0:n:11, n - 1] if n > 16 else np.arange(n) for n in dst)
        arrays.update({f"out{k}": out[:, rows][:, :, cols], f"rows{k}": rows, f"cols{k}": cols,
                       f"src{k}": np.array(src), f"dst{k}": np.array(dst)})
    np.savez_compressed(path, **arrays)
    print(f"wrote {path} ({len(RESIZE_CASES)} cases)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--width-divisor", type=int, default=64)
    parser.add_argument("--full", action="store_true", help="full widths, random weights, TensorFlow's logits")
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--resize", action="store_true", help="write OUT (.npz): TF1 resize_bilinear cases")
    args = parser.parse_args()
    if args.resize:
        resize_fixture(args.out)
        return
    v1.disable_eager_execution()
    if args.full:
        ckpt = args.out / "full" / "model.ckpt"
        save(lambda vs: random_values(vs, seed=0), 1, [(ckpt, v1.train.SaverDef.V1)])
        rng = np.random.default_rng(1)
        pixels = rng.integers(0, 256, (args.images, 299, 299, 3)).astype(np.float32)
        images = pixels / 127.5 - 1  # StackGAN's preprocess: [0, 255] -> [-1, 1]
        np.savez(args.out / "full" / "logits.npz", images=images, logits=stackgan_logits(ckpt, images))
        print(f"wrote {args.out / 'full' / 'logits.npz'}")
        return
    save(pattern_values, args.width_divisor,
         [(args.out / "v1" / "model.ckpt", v1.train.SaverDef.V1), (args.out / "v2" / "model.ckpt", v1.train.SaverDef.V2)])


if __name__ == "__main__":
    main()
