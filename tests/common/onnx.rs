//! Small ONNX files built in the tests (hostile and unsupported graphs).

use condenser::onnx::proto::*;

/// A float tensor's type; `None` dimensions are symbolic.
fn value_info(name: &str, dims: &[Option<i64>]) -> ValueInfoProto {
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeTensor {
                elem_type: Some(1),
                shape: Some(TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|d| Dimension {
                            dim_value: *d,
                            dim_param: d.is_none().then(|| "N".to_string()),
                        })
                        .collect(),
                }),
            }),
        }),
    }
}

/// A graph of one node `op` (named `the_node`, opset 17) reading the image `x`
/// of `dims`, then int64 initializers, then float initializers (name, shape,
/// values), and writing `y` (declared with the same dims).
pub fn one_node(
    op: &str,
    dims: &[Option<i64>],
    ints: &[(&str, Vec<i64>)],
    floats: &[(&str, Vec<i64>, Vec<f32>)],
) -> Vec<u8> {
    let mut inputs = vec!["x".to_string()];
    let mut init = Vec::new();
    for (name, v) in ints {
        inputs.push(name.to_string());
        init.push(TensorProto {
            dims: vec![v.len() as i64],
            data_type: Some(7),
            name: Some(name.to_string()),
            int64_data: v.clone(),
            ..Default::default()
        });
    }
    for (name, shape, v) in floats {
        inputs.push(name.to_string());
        init.push(TensorProto {
            dims: shape.clone(),
            data_type: Some(1),
            name: Some(name.to_string()),
            float_data: v.clone(),
            ..Default::default()
        });
    }
    let m = ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(17),
        }],
        graph: Some(GraphProto {
            node: vec![NodeProto {
                input: inputs,
                output: vec!["y".into()],
                name: Some("the_node".into()),
                op_type: Some(op.into()),
                ..Default::default()
            }],
            initializer: init,
            input: vec![value_info("x", dims)],
            output: vec![value_info("y", dims)],
            ..Default::default()
        }),
        ..Default::default()
    };
    prost::Message::encode_to_vec(&m)
}
