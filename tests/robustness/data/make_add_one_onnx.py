"""Regenerate add_one.onnx (y = x + 1 on a float32 tensor of shape (n,)): pip install onnx; python make_add_one_onnx.py"""

import onnx
from onnx import TensorProto, helper

x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])
y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n"])
one = helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])
graph = helper.make_graph([helper.make_node("Add", ["x", "one"], ["y"])], "add_one", [x], [y], [one])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="genpost-tests")
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save(model, "add_one.onnx")
