//! LLB definitions stackctl solves itself (not through the Dockerfile frontend): an image by
//! digest, and a folder of local files arranged by a file op. BuildKit names each vertex by the
//! sha256 of its marshalled op, and a definition ends with an op whose only input is the result;
//! that is all buildctl's `llb.Marshal` does, written out here for the few ops needed.

use bollard_buildkit_proto::pb::{
    file_action, op, Definition, FileAction, FileActionCopy, FileOp, Input, Op, OpMetadata,
    Platform, SourceOp,
};
use prost::Message as _;
use sha2::Digest as _;
use std::collections::BTreeMap;

/// BuildKit's platform message for `os/arch[/variant]`.
pub fn platform(p: &str) -> Platform {
    let mut parts = p.split('/');
    let os = parts.next().unwrap_or("linux").to_string();
    let architecture = parts.next().unwrap_or("amd64").to_string();
    let variant = parts.next().unwrap_or("").to_string();
    Platform {
        architecture,
        os,
        variant,
        ..Default::default()
    }
}

/// A definition under construction: ops in order (inputs before the ops that use them).
#[derive(Default)]
struct Builder {
    ops: Vec<Vec<u8>>,
    metadata: BTreeMap<String, OpMetadata>,
}

impl Builder {
    /// Add `op`; the digest it is known by.
    fn add(&mut self, op: Op) -> String {
        let bytes = op.encode_to_vec();
        let digest = digest_of(&bytes);
        if !self.ops.iter().any(|o| digest_of(o) == digest) {
            self.ops.push(bytes);
        }
        digest
    }

    fn finish(mut self, result: String) -> Definition {
        self.add(Op {
            inputs: vec![Input {
                digest: result,
                index: 0,
            }],
            ..Default::default()
        });
        Definition {
            def: self.ops,
            metadata: self.metadata,
            source: None,
        }
    }
}

fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// An image by reference (`repo@sha256:…` for exactly the pushed one) for a platform (the
/// platform's manifest of an index; None: the node's own).
pub fn image(reference: &str, platform_name: Option<&str>) -> Definition {
    let mut b = Builder::default();
    let d = b.add(Op {
        platform: platform_name.map(platform),
        op: Some(op::Op::Source(SourceOp {
            identifier: format!("docker-image://{reference}"),
            attrs: BTreeMap::new(),
        })),
        ..Default::default()
    });
    b.finish(d)
}

/// One file or folder to place: from the session's local folder `local` (by its path in that
/// folder, `/` for all of it) to `dest` in the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub local: String,
    pub src: String,
    pub dest: String,
    pub is_dir: bool,
}

/// A folder made of local files: each [`Placed`] copied from the session's local folders onto
/// an empty folder, in order (at least one). Nothing runs: BuildKit copies them.
pub fn local_tree(session: &str, placed: &[Placed]) -> Definition {
    let mut b = Builder::default();
    let mut locals: Vec<String> = vec![];
    for p in placed {
        if !locals.contains(&p.local) {
            locals.push(p.local.clone());
        }
    }
    let inputs: Vec<Input> = locals
        .iter()
        .map(|name| {
            let mut attrs = BTreeMap::new();
            attrs.insert("local.session".to_string(), session.to_string());
            attrs.insert("local.sharedkeyhint".to_string(), name.clone());
            let digest = b.add(Op {
                op: Some(op::Op::Source(SourceOp {
                    identifier: format!("local://{name}"),
                    attrs,
                })),
                ..Default::default()
            });
            Input { digest, index: 0 }
        })
        .collect();
    let n = inputs.len() as i64;
    // The first copy goes onto an empty folder, each next one onto the previous action's
    // result (index n + i - 1); only the last is the op's output.
    let actions = placed
        .iter()
        .enumerate()
        .map(|(i, p)| FileAction {
            input: if i == 0 { -1 } else { n + i as i64 - 1 },
            secondary_input: locals.iter().position(|l| l == &p.local).unwrap_or(0) as i64,
            output: if i + 1 == placed.len() { 0 } else { -1 },
            action: Some(file_action::Action::Copy(FileActionCopy {
                src: p.src.clone(),
                dest: p.dest.clone(),
                follow_symlink: true,
                dir_copy_contents: p.is_dir,
                create_dest_path: true,
                mode: -1,
                timestamp: -1,
                ..Default::default()
            })),
        })
        .collect();
    let d = b.add(Op {
        inputs,
        op: Some(op::Op::File(FileOp { actions })),
        ..Default::default()
    });
    b.finish(d)
}

/// What [`run_with_output`] runs, and where.
pub struct RunWithOutput<'a> {
    pub image_ref: &'a str,
    pub platform: Option<&'a str>,
    pub session: &'a str,
    pub placed: &'a [Placed],
    pub tests_at: &'a str,
    pub out_at: &'a str,
    pub meta: bollard_buildkit_proto::pb::Meta,
    pub cacheable: bool,
    pub name: &'a str,
}

/// A run of `meta` on the image (its root, output 0), with the folder of `placed` read-only at
/// `tests_at` and a fresh folder anyone may write at `out_at` (output 1, the definition's
/// result). With `cacheable`, BuildKit may serve it from its cache like any exec op (the key is
/// the image's digest, the files' contents and `meta`; only a run that exits 0 is kept);
/// without, it runs every time (`ignore_cache`). `name` names its vertex in the build's
/// progress (make it unique to the run).
pub fn run_with_output(run: RunWithOutput<'_>) -> Definition {
    let RunWithOutput {
        image_ref,
        platform: platform_name,
        session,
        placed,
        tests_at,
        out_at,
        meta,
        cacheable,
        name,
    } = run;
    use bollard_buildkit_proto::pb::{ExecOp, FileActionMkDir, Mount};
    let mut b = Builder::default();
    let pick = |d: &Definition| -> Input {
        let last = Op::decode(d.def.last().expect("a definition").as_slice()).expect("own op");
        last.inputs[0].clone()
    };
    let image_def = image(image_ref, platform_name);
    let tests_def = local_tree(session, placed);
    for d in [&image_def, &tests_def] {
        for op in &d.def[..d.def.len() - 1] {
            if !b.ops.contains(op) {
                b.ops.push(op.clone());
            }
        }
    }
    let out = b.add(Op {
        op: Some(op::Op::File(FileOp {
            actions: vec![FileAction {
                input: -1,
                secondary_input: -1,
                output: 0,
                action: Some(file_action::Action::Mkdir(FileActionMkDir {
                    path: "/out".into(),
                    mode: 0o1777,
                    make_parents: true,
                    owner: None,
                    timestamp: -1,
                })),
            }],
        })),
        ..Default::default()
    });
    let exec = b.add(Op {
        inputs: vec![
            pick(&image_def),
            pick(&tests_def),
            Input {
                digest: out,
                index: 0,
            },
        ],
        platform: platform_name.map(platform),
        op: Some(op::Op::Exec(ExecOp {
            meta: Some(meta),
            mounts: vec![
                Mount {
                    input: 0,
                    dest: "/".into(),
                    output: 0,
                    ..Default::default()
                },
                Mount {
                    input: 1,
                    dest: tests_at.into(),
                    output: -1,
                    readonly: true,
                    ..Default::default()
                },
                Mount {
                    input: 2,
                    selector: "/out".into(),
                    dest: out_at.into(),
                    output: 1,
                    ..Default::default()
                },
            ],
            ..Default::default()
        })),
        ..Default::default()
    });
    b.metadata.insert(
        exec.clone(),
        OpMetadata {
            ignore_cache: !cacheable,
            description: BTreeMap::from([("llb.customname".to_string(), name.to_string())]),
            ..Default::default()
        },
    );
    let mut d = b.finish(exec.clone());
    // The result is the written folder (output 1), not the root.
    let last = d.def.len() - 1;
    d.def[last] = Op {
        inputs: vec![Input {
            digest: exec.clone(),
            index: 1,
        }],
        ..Default::default()
    }
    .encode_to_vec();
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_definition_ends_with_its_result() {
        let d = image("r.io/x@sha256:abc", Some("linux/arm64/v8"));
        assert_eq!(d.def.len(), 2);
        let src = Op::decode(d.def[0].as_slice()).unwrap();
        assert_eq!(src.platform.as_ref().unwrap().architecture, "arm64");
        assert_eq!(src.platform.as_ref().unwrap().variant, "v8");
        let last = Op::decode(d.def[1].as_slice()).unwrap();
        assert_eq!(last.inputs[0].digest, digest_of(&d.def[0]));
        assert!(last.op.is_none());
    }

    #[test]
    fn local_tree_chains_its_copies() {
        let placed = vec![
            Placed {
                local: "tests_common".into(),
                src: "/conftest.py".into(),
                dest: "/conftest.py".into(),
                is_dir: false,
            },
            Placed {
                local: "test".into(),
                src: "/".into(),
                dest: "/test".into(),
                is_dir: true,
            },
        ];
        let d = local_tree("sess", &placed);
        // Two local sources, the file op, the result pointer.
        assert_eq!(d.def.len(), 4);
        let file = Op::decode(d.def[2].as_slice()).unwrap();
        assert_eq!(file.inputs.len(), 2);
        let Some(op::Op::File(f)) = file.op else {
            panic!("a file op")
        };
        assert_eq!(f.actions.len(), 2);
        assert_eq!((f.actions[0].input, f.actions[0].secondary_input), (-1, 0));
        assert_eq!((f.actions[1].input, f.actions[1].secondary_input), (2, 1));
        assert_eq!(
            f.actions.iter().map(|a| a.output).collect::<Vec<_>>(),
            [-1, 0]
        );
    }
}
