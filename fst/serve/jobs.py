"""One stylize job, on a worker thread: decode, stylize, encode; failures as HTTP errors.

Memory of a job (measured, README "fst serve"): the upload's bytes, the image decoded at most
at --max-pixels (a JPEG at a 1/2..1/8 scale near the answer's size) and shrunk to the answer's
size in 8 or 16 bits before the float32 copy, then the network's activations, given back to the
system after the run.
"""

from __future__ import annotations

import io
import time
from functools import partial

from fst import FstError, __version__
from fst.images import DECODED_FORMATS, BrokenImageError, NotAnImageError, TooManyPixelsError, encode_image, load_image
from fst.serve.errors import ApiError
from fst.serve.parsing import FORMATS, Params
from fst.stylize import stylize_array


def run_job(model, data: bytes, params: Params, max_pixels: int, max_size: int) -> tuple[bytes, tuple[int, int], float]:
    """-> (encoded answer, (width, height), seconds)."""
    start = time.perf_counter()
    try:
        limit = min(params.max_size or max_size, max_size)
        # header checked before decoding; decoded once, shrunk (never enlarged) to the limit
        image = load_image(io.BytesIO(data), max_pixels=max_pixels, max_side=limit)
        # a collection's style weights go with each call: the shared stylizer is never changed
        stylizer = model.stylizer if params.weights is None else partial(model.stylizer, weights=params.weights)
        out = stylize_array(stylizer, image.rgb, params.strength, params.preserve_color, stroke_scale=params.stroke_scale)
        meta = {"Software": f"fst {__version__}", "fst.model": model.name, **({"fst.style": params.label} if params.label else {})}
        encoded = encode_image(out, FORMATS[params.format][0], image.alpha, metadata=meta)
    except TooManyPixelsError as e:
        raise ApiError(413, str(e).split(" (raise it")[0].replace("the limit", "this server's limit")) from None
    except NotAnImageError:
        raise ApiError(415, f"not an image in a format this server reads ({', '.join(DECODED_FORMATS)})") from None
    except BrokenImageError as e:
        raise ApiError(400, str(e)) from None
    except FstError as e:  # e.g. too small to stylize
        raise ApiError(422, str(e)) from None
    except MemoryError:
        raise ApiError(503, "out of memory; try a smaller image or max_size", {"Retry-After": "5"}) from None
    except (OSError, ValueError, SyntaxError, NotImplementedError, EOFError) as e:  # Pillow's rarer decode failures
        raise ApiError(400, f"image: cannot decode ({str(e)[:200]})") from None
    return encoded, (out.shape[2], out.shape[1]), time.perf_counter() - start
