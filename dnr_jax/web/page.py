"""The page (Gradio Blocks): upload, size, paint, preview, result, compare, download.

Every callback is a thin adapter from the page's values to :class:`engine.Engine`; the
page never hands the client a path of its own choosing (uploads and results live in the
server's temporary folder, which Gradio serves and deletes). Errors the user can fix are
``gr.Error`` messages in the page, never a stack trace.
"""

from __future__ import annotations

import pathlib
import tempfile
import json
import threading

import gradio as gr
import numpy as np

from dnr_jax.io import image_io
from dnr_jax.resizing import masks as masks_lib
from dnr_jax.web import engine as engine_lib

INTRO = """# dnr_jax: content-aware resizing
Deep Network Resizing (Arar et al.): VGG19 features decide what to crop, carve and warp.
Upload a photo, pick a size (the preview follows the slider), paint what to **keep**
(green) or **remove** (red), then **Resize** for the full result."""


def theme() -> gr.themes.Theme:
  """The default theme on the system's fonts: no font is fetched from the internet."""
  return gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["monospace"])


def _state_image(state: dict) -> np.ndarray:
  if not state or state.get("image") is None:
    raise gr.Error("Upload a photo first (or press 'Bundled photo').")
  return state["image"]


def build(engine: engine_lib.Engine, sample: pathlib.Path | None = None,
          workdir: pathlib.Path | None = None) -> gr.Blocks:
  """The Blocks app around one engine. ``workdir``: where results are written for
  download (a fresh temporary folder by default)."""
  workdir = pathlib.Path(workdir or tempfile.mkdtemp(prefix="dnr_jax_web_"))
  workdir.mkdir(parents=True, exist_ok=True)
  cancels: dict[str, threading.Event] = {}

  def size_text(state, wp, hp, aspect):
    if not state or state.get("image") is None:
      return "", None, None
    h, w = state["image"].shape[:2]
    oh, ow = engine_lib.target_hw((h, w), wp, hp, aspect)
    return f"{w}x{h} -> **{ow}x{oh}** px", ow, oh

  def on_upload(file, wp, hp, aspect):
    if file is None:
      return gr.skip()
    path = file if isinstance(file, str) else file.name
    try:
      image = engine.load(path)
    except image_io.ImageError as e:
      raise gr.Error(str(e).replace(str(path), pathlib.Path(path).name)) from None
    state = {"image": image, "source": path, "name": pathlib.Path(path).stem}
    text, ow, oh = size_text(state, wp, hp, aspect)
    editor = {"background": image, "layers": [], "composite": image}
    return state, editor, text, ow, oh, engine.preview(image, (oh, ow))

  def on_sample(wp, hp, aspect):
    return on_upload(str(sample), wp, hp, aspect)

  def on_size(state, wp, hp, aspect):
    text, ow, oh = size_text(state, wp, hp, aspect)
    if not text:
      return text, ow, oh, None
    return text, ow, oh, engine.preview(state["image"], (oh, ow))

  def on_px(state, ow, oh):
    image = _state_image(state)
    h, w = image.shape[:2]
    return (float(np.clip(100.0 * (ow or w) / w, 100 * engine_lib.MAX_SHRINK, 200)),
            float(np.clip(100.0 * (oh or h) / h, 100 * engine_lib.MAX_SHRINK, 200)), "free")

  def on_resize(state, editor, wp, hp, aspect, request: gr.Request,
                progress=gr.Progress()):
    image = _state_image(state)
    h, w = image.shape[:2]
    out_hw = engine_lib.target_hw((h, w), wp, hp, aspect)
    layers = (editor or {}).get("layers") or []
    keep, remove = engine_lib.masks_from_layers(layers, (h, w))
    session = request.session_hash if request else "local"
    cancel = cancels.setdefault(session, threading.Event())
    cancel.clear()
    progress(0.0, desc="queued")
    try:
      out = engine.retarget(image, out_hw, keep, remove,
                            lambda phase, f: progress(f, desc=phase), cancel)
    except engine_lib.Cancelled:
      raise gr.Error("Cancelled.") from None
    except (ValueError, masks_lib.KeepInfeasible) as e:
      raise gr.Error(str(e).splitlines()[0]) from None
    res = out.result
    folder = pathlib.Path(tempfile.mkdtemp(dir=workdir))
    suffix = pathlib.Path(state["source"]).suffix.lower()
    suffix = suffix if suffix in (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff") else ".png"
    name = f"{state['name']}_{res.output.shape[1]}x{res.output.shape[0]}"
    image_file = engine.save(res.output, state["source"], folder, name + suffix)
    report_file = folder / f"{name}.json"
    report_file.write_text(json.dumps(out.report, indent=2) + "\n")
    compare = engine.compare(image, res.output.shape[:2])
    gallery = [(res.output, "dnr_jax")] + [(v, k) for k, v in compare.items()]
    overlays = [(v, k.replace("_", " ")) for k, v in out.overlays.items()]
    before = compare["linear scaling"]
    return ((before, res.output), gallery, overlays, out.summary, [str(image_file),
                                                                   str(report_file)])

  def on_cancel(request: gr.Request):
    session = request.session_hash if request else "local"
    cancels.setdefault(session, threading.Event()).set()
    return "Cancelling at the next step..."

  with gr.Blocks(title="dnr_jax", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
    state = gr.State({})
    gr.Markdown(INTRO)
    with gr.Row():
      with gr.Column(scale=3):
        upload = gr.File(label="Photo", file_types=["image"], type="filepath",
                         elem_id="upload")
        sample_button = gr.Button("Bundled photo", size="sm", visible=sample is not None)
        editor = gr.ImageEditor(
            label="Paint: green = keep, red = remove (eraser to undo)", type="numpy",
            image_mode="RGBA", format="png", sources=(), elem_id="editor",
            brush=gr.Brush(colors=[engine_lib.KEEP_COLOUR, engine_lib.REMOVE_COLOUR],
                           default_color=engine_lib.KEEP_COLOUR, color_mode="fixed",
                           default_size=24),
            eraser=gr.Eraser(default_size=24), transforms=(), layers=False)
      with gr.Column(scale=2):
        aspect = gr.Radio(list(engine_lib.ASPECTS), value="free", label="Aspect",
                          elem_id="aspect")
        width_pct = gr.Slider(100 * engine_lib.MAX_SHRINK, 200, value=75, step=1,
                              label="Width (%)", elem_id="width_pct")
        height_pct = gr.Slider(100 * engine_lib.MAX_SHRINK, 200, value=100, step=1,
                               label="Height (%)", elem_id="height_pct")
        with gr.Row():
          width_px = gr.Number(label="Width (px)", precision=0, elem_id="width_px")
          height_px = gr.Number(label="Height (px)", precision=0, elem_id="height_px")
        size = gr.Markdown(elem_id="size")
        preview = gr.Image(label="Preview (fast plan: crop + warp, no reconstruction)",
                           type="numpy", interactive=False, elem_id="preview",
                           format="png")
        with gr.Row():
          run = gr.Button("Resize", variant="primary", elem_id="resize")
          stop = gr.Button("Cancel", elem_id="cancel")
    summary = gr.Markdown(elem_id="summary")
    with gr.Row():
      slider = gr.ImageSlider(label="Before (linear scaling) / after (dnr_jax)",
                              type="numpy", elem_id="before_after", format="png")
      files = gr.File(label="Download: the result (input's metadata kept) and the report",
                      file_count="multiple", elem_id="downloads")
    gallery = gr.Gallery(label="Beside linear scaling and seam carving", columns=3,
                         elem_id="compare", format="png", object_fit="contain")
    overlays = gr.Gallery(label="Importance (Eq. 1) and seams", columns=2, elem_id="overlays",
                          format="png", object_fit="contain")

    size_inputs = [state, width_pct, height_pct, aspect]
    size_outputs = [size, width_px, height_px, preview]
    upload.upload(on_upload, [upload, width_pct, height_pct, aspect],
                  [state, editor, size, width_px, height_px, preview])
    sample_button.click(on_sample, [width_pct, height_pct, aspect],
                        [state, editor, size, width_px, height_px, preview])
    for s in (width_pct, height_pct):
      s.release(on_size, size_inputs, size_outputs, show_progress="hidden")
    aspect.change(on_size, size_inputs, size_outputs, show_progress="hidden")
    for n in (width_px, height_px):
      n.submit(on_px, [state, width_px, height_px], [width_pct, height_pct, aspect]).then(
          on_size, size_inputs, size_outputs, show_progress="hidden")
    job = run.click(on_resize, [state, editor, width_pct, height_pct, aspect],
                    [slider, gallery, overlays, summary, files], concurrency_limit=1)
    stop.click(on_cancel, None, summary, cancels=[job], queue=False)
  return demo
