//! docs/output.schema.json, generated. What names a kind is derived from the types (`schemars`, test builds
//! only): the kinds' names ([`Kind`]), every write call a plan can hold (each kind's `Change`, split by the
//! `x-made-by` mark its destroy-only and shared variants carry) and the resources `stacks show` prints
//! ([`Desired`]). The command results around them, built with `serde_json::json!` in the commands, are
//! `schema/base.json`, which names no kind.
//!
//! `cargo test --bins schema` fails when the committed file differs; `UPDATE_SCHEMA=1` writes it.

use schemars::generate::SchemaSettings;
use serde_json::{json, Map, Value};

use crate::resources::{change_schemas, Kind};
use crate::stack::Desired;

const BASE: &str = include_str!("schema/base.json");

/// `T`'s schema for what it serialises to, its own definitions taken out into `defs`.
fn derived<T: schemars::JsonSchema>(defs: &mut Map<String, Value>) -> Value {
    let generator = SchemaSettings::draft2020_12().for_serialize().into_generator();
    let mut schema = generator.into_root_schema_for::<T>().to_value();
    let object = schema.as_object_mut().expect("a schema object");
    for key in ["$schema", "title"] {
        object.remove(key);
    }
    if let Some(Value::Object(own)) = object.remove("$defs") {
        defs.extend(own);
    }
    schema
}

/// Which verbs make the call: a variant's `x-made-by` mark (`destroy`, or `both`), `bootstrap` unmarked.
fn made_by(variant: &mut Value) -> String {
    match variant.as_object_mut().and_then(|v| v.remove("x-made-by")) {
        Some(Value::String(by)) => by,
        _ => "bootstrap".into(),
    }
}

pub(crate) fn document() -> Value {
    let mut doc: Value = serde_json::from_str(BASE).expect("schema/base.json is JSON");
    let mut defs = Map::new();
    let (mut bootstrap, mut destroy_only, mut shared) = (Vec::new(), Vec::new(), Vec::new());
    for mut change in change_schemas() {
        let variants = change.get_mut("oneOf").and_then(Value::as_array_mut).map(std::mem::take).unwrap_or_default();
        for mut variant in variants {
            match made_by(&mut variant).as_str() {
                "destroy" => destroy_only.push(variant),
                "both" => {
                    bootstrap.push(variant.clone());
                    shared.push(variant);
                }
                _ => bootstrap.push(variant),
            }
        }
    }
    let mut kind = derived::<Kind>(&mut defs);
    kind["description"] = json!("The kind of a resource, as plans name it.");
    defs.insert("kind".into(), kind);
    defs.insert(
        "change".into(),
        json!({"description": "One write call of `bootstrap`; `call` names the IAM API operation.", "oneOf": bootstrap}),
    );
    defs.insert(
        "removal".into(),
        json!({
            "description": "A write call only `destroy` makes; `call` names the IAM API operation (DeleteServiceLinkedRole \
                            includes waiting for AWS's deletion task).",
            "oneOf": destroy_only,
        }),
    );
    defs.insert(
        "destroy_change".into(),
        json!({
            "description": "One write call of `destroy`: a removal, or one of the calls `bootstrap` also makes to take \
                            something away.",
            "oneOf": [{"$ref": "#/$defs/removal"}, {"oneOf": shared}],
        }),
    );
    // `stacks show`: the stack's resources, kind by kind, beside the envelope of schema/base.json.
    let desired = derived::<Desired>(&mut defs);
    let shown = &mut doc["$defs"]["stack_result"];
    for (name, property) in desired["properties"].as_object().into_iter().flatten() {
        if shown["properties"].get(name).is_none() {
            shown["properties"][name] = property.clone();
        }
    }
    for name in desired["required"].as_array().into_iter().flatten() {
        let required = shown["required"].as_array_mut().expect("stack_result lists its required fields");
        if !required.contains(name) {
            required.push(name.clone());
        }
    }
    doc["$defs"].as_object_mut().expect("$defs").extend(defs);
    doc
}

/// The document as committed: two-space indents, a final newline.
pub(crate) fn text() -> String {
    let mut out = serde_json::to_string_pretty(&document()).expect("a JSON value");
    out.push('\n');
    out
}

#[test]
fn the_committed_schema_is_the_generated_one() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/output.schema.json");
    let generated = text();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap();
    assert!(
        committed == generated,
        "docs/output.schema.json is not the one the types give: run `UPDATE_SCHEMA=1 cargo test --bins schema`"
    );
}

#[test]
fn every_kind_and_every_call_is_in_the_schema() {
    let doc = document();
    let kinds = doc["$defs"]["kind"].to_string();
    for kind in ["user_policies", "policy", "role", "instance_profile", "service_linked_role"] {
        assert!(kinds.contains(&format!("\"{kind}\"")), "{kind}: {kinds}");
    }
    let calls = |def: &str| doc["$defs"][def].to_string();
    assert!(calls("change").contains("\"CreateRole\"") && !calls("change").contains("\"DeleteRole\""));
    assert!(calls("removal").contains("\"DeleteRole\"") && !calls("removal").contains("\"CreateRole\""));
    assert!(calls("destroy_change").contains("\"RemoveRoleFromInstanceProfile\""));
}
