"""A ``torch.save``d state dict's tensor names and shapes, read without torch (from the pickle of
its zip: ``files.checkpoint_pickle``), and a digest of them: how the launch check tells which
architecture a ``feature_extractor.checkpoint`` is of (a backbone's ``body_state`` fact)."""

import io
from typing import Any, Optional

from app.files import _NOT_A_CHECKPOINT, _ConfigReader, checkpoint_pickle


class _Shape(tuple[int, ...]):
    """A tensor's shape, where a state dict holds the tensor."""


def _shape(storage: Any, offset: Any, size: Any, *rest: Any) -> _Shape:
    return _Shape(int(n) for n in size)  # torch._utils._rebuild_tensor_v2's size


class _ShapeReader(_ConfigReader):
    """Reads a state dict's pickle with each tensor as its shape: nothing imported, nothing run."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _shape
        if (module, name) == ("torch._utils", "_rebuild_parameter"):  # (data, requires_grad, hooks)
            return lambda data, *rest: data
        return super().find_class(module, name)


def state_dict_shapes(path: str) -> Optional[dict[str, tuple[int, ...]]]:
    """Each tensor's shape, by name, of a plain state dict saved with ``torch.save``, read
    without torch; None for any other file (a checkpoint of the app's: its config says what it is)."""
    try:
        state = _ShapeReader(io.BytesIO(checkpoint_pickle(path))).load()
    except _NOT_A_CHECKPOINT:
        return None
    if not isinstance(state, dict) or not state or not all(isinstance(v, _Shape) for v in state.values()):
        return None
    return {str(k): tuple(v) for k, v in state.items()}


def state_digest(shapes: dict[str, tuple[int, ...]]) -> str:
    """16 hex digits that tell apart state dicts of different names or shapes (a backbone's
    ``body_state``)."""
    import hashlib

    text = "\n".join(f"{k}:{','.join(map(str, shape))}" for k, shape in sorted(shapes.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
