"""Before/after check of a refactor: the same jobs, the same images?

    PYTHONPATH=/path/to/old/checkout python scripts/compare_paths.py run before.npz
    python scripts/compare_paths.py run after.npz
    python scripts/compare_paths.py compare before.npz after.npz

``run`` retargets the bundled photo (75% and 50% width, 75% height, 125% width, two
axes, keep and remove masks), an upscaled 12 MP copy and a small folder (batch size 1)
with the real weights and default settings, through whichever ``dnr_jax`` is on the
path (the public API only), and saves every output. ``compare`` prints, per job,
whether the outputs are identical, the largest difference and the share of pixels that
differ (docs/RESULTS.md, "Before and after").
"""
import sys, time, numpy as np
from PIL import Image

if sys.argv[1] == "compare":
  a, b = np.load(sys.argv[2]), np.load(sys.argv[3])
  for k in a.files:
    x, y = a[k].astype(int), b[k].astype(int)
    if x.shape != y.shape:
      print(k, "shapes differ", x.shape, y.shape)
      continue
    d = np.abs(x - y)
    print(f"{k:12s} {x.shape} identical={np.array_equal(x, y)} max={d.max()} "
          f"differing={(d.max(-1) > 0).mean() * 100:.3f}%")
  sys.exit(0)

import dnr_jax  # noqa: E402
from dnr_jax import batching  # noqa: E402
out_path = sys.argv[2]
w = dnr_jax.load_vgg19()
try:
  from dnr_jax.io import image_io
except ImportError:
  from dnr_jax import image_io
photo = image_io.load_image(image_io.sample_image_path())  # 400x600
cfg = dnr_jax.RetargetConfig()
res = {}
def job(name, fn):
  t = time.perf_counter(); r = fn(); res[name] = r.output
  print(name, r.output.shape, f"{time.perf_counter()-t:.1f}s", r.operator, r.axis_order, flush=True)
keep = np.zeros(photo.shape[:2], bool); keep[120:300, 200:330] = True
remove = np.zeros(photo.shape[:2], bool); remove[250:330, 60:120] = True
big = np.asarray(Image.fromarray(photo).resize((4000, 3000), Image.LANCZOS))
job("photo_75w", lambda: dnr_jax.retarget(w, photo, (400, 450), cfg))
job("photo_50w", lambda: dnr_jax.retarget(w, photo, (400, 300), cfg))
job("photo_75h", lambda: dnr_jax.retarget(w, photo, (300, 600), cfg))
job("enlarge_125", lambda: dnr_jax.retarget(w, photo, (400, 750), cfg))
job("two_axis", lambda: dnr_jax.retarget(w, photo, (320, 480), cfg))
job("keep", lambda: dnr_jax.retarget(w, photo, (400, 480), cfg, keep=keep))
job("remove", lambda: dnr_jax.retarget(w, photo, (400, 540), cfg, remove=remove))
job("mp12", lambda: dnr_jax.retarget(w, big, (3000, 3000), cfg))
# a folder: crops of the photo at several sizes, batch size 1 (the CLI's default)
ims = [np.ascontiguousarray(photo[y:y + 300, x:x + 400]) for y, x in ((0, 0), (100, 200), (50, 100), (0, 150))]
outs = [(300, 300), (300, 300), (240, 400), (240, 300)]
t = time.perf_counter()
rs = batching.retarget_many(w, ims, outs, cfg, batch_size=1)
print("folder", f"{time.perf_counter()-t:.1f}s", [r.axis_order for r in rs])
for i, r in enumerate(rs): res[f"folder_{i}"] = r.output
np.savez(out_path, **res)
