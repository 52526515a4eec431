"""What an exported graph may hold, checked before onnxruntime sees a byte of it: what export.py writes.

ONNX is a program: a Loop that runs 10^15 times, a subgraph, an operator from a custom
domain or weights in a file elsewhere on the disk are all valid ONNX, and onnxruntime
starts on some of them while it loads. A directory from elsewhere (soon the Hugging Face Hub)
must hold only what ``scriptrnn export`` writes, so the graph is read here first with a few
dozen lines of protobuf wire format (the ``onnx`` package is not in the runtime install, and
this reads only the fields it checks):

- the operators: only those the exporter emits for LSTM, GRU and RNN models, full or
  adaptive softmax, float or int8 (``OPERATORS``), at the opsets it writes; no subgraphs
  (Loop, If, Scan take them as attributes), no functions, no training section
- the inputs and outputs: ids (B, T) int64 and the state (L, B, H), logits (B, V) and the
  state out, with the names, types and sizes config.json gives
- the sizes: the file and its tensors no bigger than config.json's model can need, every
  tensor stored in the file itself (no external data, which names other files)

It does not prove that the graph computes what the names say: onnxruntime then runs one
token through it and checks the shapes it returns (onnx.py), and docs/security.md says
what remains.
"""

from __future__ import annotations

from ..errors import ScriptRNNError

# Every (domain, operator) export.py writes: found by exporting each cell, level, softmax and
# quantization (tests/test_hostile_files.py checks that the list still covers them).
OPERATORS = frozenset({("", op) for op in (
    "Add", "Cast", "Concat", "Constant", "ConstantOfShape", "DequantizeLinear", "DynamicQuantizeLinear", "Equal",
    "Expand", "Flatten", "GRU", "Gather", "LSTM", "LogSoftmax", "MatMul", "MatMulInteger", "Mul", "RNN", "Range",
    "Reshape", "ScatterND", "Shape", "Slice", "Squeeze", "Transpose", "Unsqueeze", "Where")}
    | {("com.microsoft", "DynamicQuantizeLSTM")})
OPSETS = {"": 17, "ai.onnx": 17, "com.microsoft": 1}  # export.OPSET, and what int8 quantization adds
MAX_NODES = 4096  # the exporter writes ~40 for a full softmax, ~200 for an adaptive one
_FLOAT, _INT64 = 1, 7  # TensorProto element types
_GRAPH_ATTRIBUTES = {6, 11}  # AttributeProto.g and .graphs: a subgraph (Loop, If, Scan)


class _Bad(Exception):
    """The bytes are not the protobuf they claim to be."""


def check_exported_graph(data: bytes, path, record) -> None:
    """Refuse, in one line, a graph that is not what scriptrnn export writes for config.json's model."""
    try:
        problem = _problem(memoryview(data), record)
    except (_Bad, UnicodeDecodeError, IndexError) as e:
        problem = f"not an ONNX graph, or a damaged one ({e or type(e).__name__})"
    if problem:
        raise ScriptRNNError(f"{path}: {problem}; scriptrnn loads only the graphs `scriptrnn export` writes")


def graph_bytes_budget(record) -> int:
    """The most bytes an exported graph of config.json's model can need (every parameter as float64)."""
    m = record.model
    V, E, H, L = (m.get(k) for k in ("vocab_size", "embedding_size", "hidden_size", "num_layers"))
    if not all(isinstance(n, int) and not isinstance(n, bool) and 0 < n <= 10**7 for n in (V, E, H, L)):
        raise ScriptRNNError("config.json: the model's vocab_size, embedding_size, hidden_size and num_layers must "
                             "be whole numbers from 1 to 10,000,000")
    wide = max(E, H)
    parameters = V * E + 4 * L * H * (wide + H + 2) + H * E + 2 * V * (wide + 1)
    return 8 * parameters + 16 * 2**20


# ---------------------------------------------------------------- protobuf wire format


def _varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise _Bad("truncated number")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _fields(buf: memoryview, start: int, end: int):
    """(field number, value) of a message: an int for numbers, a (start, end) span for bytes and messages."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos, end)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise _Bad("field number 0")
        if wire == 0:
            value, pos = _varint(buf, pos, end)
        elif wire == 2:
            size, pos = _varint(buf, pos, end)
            value, pos = (pos, pos + size), pos + size
        elif wire in (1, 5):
            value, pos = None, pos + (8 if wire == 1 else 4)
        else:
            raise _Bad(f"wire type {wire}")
        if pos > end:
            raise _Bad("truncated")
        yield field, value


def _text(buf: memoryview, span) -> str:
    return bytes(buf[span[0]:span[1]]).decode("utf-8")


def _message(buf: memoryview, span) -> dict[int, list]:
    fields: dict[int, list] = {}
    for field, value in _fields(buf, *span):
        fields.setdefault(field, []).append(value)
    return fields


# ---------------------------------------------------------------- the checks


def _problem(buf: memoryview, record) -> str | None:
    model = _message(buf, (0, len(buf)))  # ModelProto
    if 20 in model or 25 in model:
        return "it holds a training section or functions"
    for span in model.get(8, []):  # opset_import
        opset = _message(buf, span)
        domain = _text(buf, opset[1][0]) if 1 in opset else ""
        if domain not in OPSETS or opset.get(2, [0])[0] > OPSETS[domain]:
            return f"it needs operator set {domain or 'ai.onnx'} {opset.get(2, [0])[0]}"
    if len(model.get(7, [])) != 1:
        return "it holds no graph"
    graph = _message(buf, model[7][0])
    if 15 in graph:
        return "it holds sparse tensors"
    if len(graph.get(1, [])) > MAX_NODES:
        return f"it holds {len(graph[1]):,} operations (at most {MAX_NODES:,})"
    tensors = list(graph.get(5, []))  # initializers, and below every Constant's value
    for span in graph.get(1, []):
        problem = _node_problem(buf, _message(buf, span), tensors)
        if problem:
            return problem
    return _tensors_problem(buf, tensors, record) or _signature_problem(buf, graph, record)


def _node_problem(buf: memoryview, node: dict, tensors: list) -> str | None:
    op = _text(buf, node[4][0]) if 4 in node else ""
    domain = _text(buf, node[7][0]) if 7 in node else ""
    if (domain, op) not in OPERATORS:
        return f"it uses the operator {(domain + '.' if domain else '') + op!r}, which scriptrnn export never writes"
    for span in node.get(5, []):  # attributes
        attribute = _message(buf, span)
        if _GRAPH_ATTRIBUTES & attribute.keys() or attribute.get(20, [0])[0] in (5, 10, 11, 12):
            return f"its {op} holds a subgraph or sparse tensor"
        tensors.extend(attribute.get(5, []) + attribute.get(10, []))
    return None


def _tensors_problem(buf: memoryview, spans: list, record) -> str | None:
    for span in spans:
        tensor = _message(buf, span)
        if 13 in tensor or tensor.get(14, [0])[0] != 0:
            return "a tensor's data is stored in another file (external data)"
    stored, budget = sum(end - start for start, end in spans), graph_bytes_budget(record)
    if stored > budget:
        return f"its tensors hold {stored:,} bytes, more than the {budget:,} config.json's model can need"
    return None


def _signature_problem(buf: memoryview, graph: dict, record) -> str | None:
    """Inputs ids (B, T) int64 and the state (L, B, H); outputs logits (B, V) and the state out."""
    m, state = record.model, (record.export or {}).get("state")
    if state not in (["h", "c"], ["h"]) or (m.get("cell") == "lstm") != (state == ["h", "c"]):
        return f"config.json's export state {state!r} is not the {m.get('cell')!r} cell's"
    L, H, V = m["num_layers"], m["hidden_size"], m["vocab_size"]
    want_in = [("ids", _INT64, [None, None])] + [(s, _FLOAT, [L, None, H]) for s in state]
    want_out = [("logits", _FLOAT, [None, V])] + [(f"{s}_out", _FLOAT, [L, None, H]) for s in state]
    got_in = [_value_info(buf, span) for span in graph.get(11, [])]
    got_out = [_value_info(buf, span) for span in graph.get(12, [])]
    for what, want, got in (("inputs", want_in, got_in), ("outputs", want_out, got_out)):
        if len(got) != len(want) or any(not _fits(g, w) for g, w in zip(got, want)):
            return f"its {what} do not fit config.json (has {_describe(got)}, needs {_describe(want)})"
    return None


def _value_info(buf: memoryview, span) -> tuple[str, int, list]:
    """(name, element type, dims): a dim is its number, or None where it is named (B, T)."""
    info = _message(buf, span)
    name = _text(buf, info[1][0]) if 1 in info else ""
    kind = _message(buf, info[2][0]) if 2 in info else {}
    tensor = _message(buf, kind[1][0]) if 1 in kind else {}
    shape = _message(buf, tensor[2][0]) if 2 in tensor else {}
    dims = [(_message(buf, d).get(1) or [None])[0] for d in shape.get(1, [])]
    return name, tensor.get(1, [0])[0], dims


def _describe(values: list) -> str:
    kinds = {_FLOAT: "float", _INT64: "int64"}
    return ", ".join(f"{name} {kinds.get(kind, kind)}[{','.join('?' if d is None else str(d) for d in dims)}]"
                     for name, kind, dims in values)[:300]


def _fits(got: tuple, want: tuple) -> bool:
    (name, kind, dims), (want_name, want_kind, want_dims) = got, want
    return (name == want_name and kind == want_kind and len(dims) == len(want_dims)
            and all(w is None or d is None or d == w for d, w in zip(dims, want_dims)))
