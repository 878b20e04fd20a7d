//! Field-by-field overrides of serde data: deep-merge a YAML mapping, or set one dotted key
//! (`sk.paths[1].kernel`), then deserialize again so that unknown fields and wrong types are caught.
use anyhow::{anyhow, bail, Context, Result};
use serde::{de::DeserializeOwned, Serialize};
use yaml_serde::{Mapping, Value};

/// `base` with every key of `overrides` replaced recursively (mappings merge, everything else replaces).
pub fn merge<T: Serialize + DeserializeOwned>(base: &T, overrides: &Value, what: &str) -> Result<T> {
    let mut tree = yaml_serde::to_value(base)?;
    merge_values(&mut tree, overrides);
    yaml_serde::from_value(tree).with_context(|| format!("{what}: invalid override"))
}

pub fn merge_values(base: &mut Value, overrides: &Value) {
    match (base, overrides) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(slot) => merge_values(slot, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// One step of a dotted key: a field name, or an index into a sequence.
#[derive(Debug, PartialEq)]
enum Step<'a> {
    Field(&'a str),
    Index(usize),
}

fn parse_key(key: &str) -> Result<Vec<Step<'_>>> {
    let mut steps = Vec::new();
    for part in key.split('.') {
        let (name, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if name.is_empty() {
            bail!("key '{key}': empty field name");
        }
        steps.push(Step::Field(name));
        while !rest.is_empty() {
            let close = rest.find(']').ok_or_else(|| anyhow!("key '{key}': unclosed '['"))?;
            let index = rest[1..close].parse().map_err(|_| anyhow!("key '{key}': bad index '{}'", &rest[1..close]))?;
            steps.push(Step::Index(index));
            rest = &rest[close + 1..];
            if !rest.is_empty() && !rest.starts_with('[') {
                bail!("key '{key}': unexpected '{rest}'");
            }
        }
    }
    Ok(steps)
}

/// Sets `key` (dotted, with `[i]` indices) in `tree` to `value`. Missing mapping fields are created so
/// that optional fields can be switched on; the later deserialization rejects names that do not exist.
pub fn set_dotted(tree: &mut Value, key: &str, value: Value) -> Result<()> {
    let steps = parse_key(key)?;
    let mut node = tree;
    for step in &steps {
        node = match step {
            Step::Field(name) => {
                if node.is_null() {
                    *node = Value::Mapping(Mapping::new());
                }
                let map =
                    node.as_mapping_mut().ok_or_else(|| anyhow!("key '{key}': '{name}' is not inside a mapping"))?;
                let k = Value::String(name.to_string());
                if !map.contains_key(&k) {
                    map.insert(k.clone(), Value::Null);
                }
                map.get_mut(&k).unwrap()
            }
            Step::Index(i) => {
                let seq = node
                    .as_sequence_mut()
                    .ok_or_else(|| anyhow!("key '{key}': [{i}] indexes something that is not a list"))?;
                let len = seq.len();
                seq.get_mut(*i)
                    .ok_or_else(|| anyhow!("key '{key}': index {i} out of range (the list has {len} entries)"))?
            }
        };
    }
    *node = value;
    Ok(())
}

/// Parses the right-hand side of `--set key=value` as YAML (numbers, booleans, lists), else a string.
pub fn parse_assignment(assignment: &str) -> Result<(String, Value)> {
    let (key, raw) = assignment.split_once('=').ok_or_else(|| anyhow!("--set '{assignment}': expected key=value"))?;
    let value = yaml_serde::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()));
    Ok((key.trim().to_string(), value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_keys_reach_list_entries_and_create_fields() {
        let mut tree: Value = yaml_serde::from_str("a: {paths: [{k: 3}, {k: 5}]}").unwrap();
        set_dotted(&mut tree, "a.paths[1].k", Value::from(1)).unwrap();
        set_dotted(&mut tree, "a.new", Value::from(true)).unwrap();
        let expected: Value = yaml_serde::from_str("a: {paths: [{k: 3}, {k: 1}], new: true}").unwrap();
        assert_eq!(tree, expected);
        assert!(set_dotted(&mut tree, "a.paths[7].k", Value::from(1))
            .unwrap_err()
            .to_string()
            .contains("out of range"));
    }

    #[test]
    fn merge_replaces_leaves_and_keeps_the_rest() {
        let mut base: Value = yaml_serde::from_str("x: 1\ny: {a: 1, b: 2}").unwrap();
        merge_values(&mut base, &yaml_serde::from_str("y: {b: 3}").unwrap());
        assert_eq!(base, yaml_serde::from_str::<Value>("x: 1\ny: {a: 1, b: 3}").unwrap());
    }
}
