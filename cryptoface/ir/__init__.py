"""The backend-neutral IR: graph, op table, ONNX importer, reference interpreter.

    from cryptoface.ir import import_onnx, run
    graph = import_onnx("model.onnx")
    outputs = run(graph, {"image": x})
"""

from .graph import Graph, Node, Value
from .interpreter import run
from .onnx_import import SUPPORTED_ONNX_OPS, import_onnx
from .ops import OP_TABLE, OpSpec, spec

__all__ = [
    "Graph",
    "Node",
    "OP_TABLE",
    "OpSpec",
    "SUPPORTED_ONNX_OPS",
    "Value",
    "import_onnx",
    "run",
    "spec",
]
