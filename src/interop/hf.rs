//! `--weights hf:REPO` (or `hf:REPO@REVISION`, or `hf:default` for the model's timm counterpart): a model's
//! weights from the Hugging Face hub's local cache, offline. The cache's layout, as `huggingface_hub` writes
//! it: `<cache>/models--<owner>--<name>/refs/<revision>` holds the commit a revision names, and
//! `snapshots/<commit>/` the files of that commit (`model.safetensors`, or `pytorch_model.bin` as
//! `torch.save` writes it). Nothing is downloaded: a missing entry is an error that says which folder was
//! searched and the command that fills it.
use anyhow::{anyhow, bail, Result};
use std::path::{Path, PathBuf};

/// What `--weights` starts with to name a Hugging Face repository.
pub const PREFIX: &str = "hf:";

/// `hf:default`: the repository of the model's timm counterpart.
pub const DEFAULT: &str = "default";

/// Weights files a snapshot may hold, the preferred first.
pub const WEIGHTS_FILES: &[&str] = &["model.safetensors", "pytorch_model.bin"];

/// Our registry's models and their timm counterparts with timm's default pretrained tag: the same
/// architecture under the same state_dict names, as the oracle tests check (tests/oracle.rs; timm's
/// resnet50 and resnext50_32x4d share torchvision's names).
pub const TIMM_MODELS: &[(&str, &str)] = &[
    ("resnet50", "resnet50.a1_in1k"),
    ("resnext50_32x4d", "resnext50_32x4d.a1h_in1k"),
    ("senet50", "seresnext50_32x4d.racm_in1k"),
    ("sknet50", "skresnext50_32x4d.ra_in1k"),
    ("dpn68", "dpn68.mx_in1k"),
];

/// The repository of `--weights` if it names one (`hf:...`), else None (a path).
pub fn repository(weights: &Path) -> Option<&str> {
    weights.to_str()?.strip_prefix(PREFIX)
}

/// The timm model (`name.tag`) whose weights fit our registered `model`.
pub fn timm_model(model: &str) -> Option<&'static str> {
    TIMM_MODELS.iter().find(|(ours, _)| *ours == model).map(|(_, timm)| *timm)
}

/// The cache folder: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`, else
/// `~/.cache/huggingface/hub` (`huggingface_hub`'s own order).
pub fn cache_dir() -> Result<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = var("HF_HUB_CACHE") {
        return Ok(dir);
    }
    if let Some(home) = var("HF_HOME") {
        return Ok(home.join("hub"));
    }
    if let Some(cache) = var("XDG_CACHE_HOME") {
        return Ok(cache.join("huggingface").join("hub"));
    }
    let home = var("HOME").ok_or_else(|| anyhow!("no Hugging Face cache: set HF_HUB_CACHE (HOME is not set)"))?;
    Ok(home.join(".cache").join("huggingface").join("hub"))
}

/// The weights file of `spec` (what follows `hf:`) in the cache; `model` is our registered model's name,
/// which `hf:default` needs.
pub fn resolve(spec: &str, model: Option<&str>) -> Result<PathBuf> {
    let (repo, revision) = match spec.split_once('@') {
        Some((repo, revision)) => (repo, revision),
        None => (spec, "main"),
    };
    let repo = if repo == DEFAULT {
        let model = model.ok_or_else(|| anyhow!("--weights hf:{DEFAULT} needs --model NAME"))?;
        let timm = timm_model(model).ok_or_else(|| {
            let known: Vec<&str> = TIMM_MODELS.iter().map(|(ours, _)| *ours).collect();
            anyhow!("--weights hf:{DEFAULT}: {model} has no timm counterpart (those that do: {})", known.join(", "))
        })?;
        format!("timm/{timm}")
    } else {
        repo.to_string()
    };
    let parts: Vec<&str> = repo.split('/').collect();
    if parts.len() != 2 || parts.iter().chain([&revision]).any(|p| !is_plain_name(p)) {
        bail!("--weights hf:{spec}: expected hf:OWNER/NAME or hf:OWNER/NAME@REVISION (or hf:{DEFAULT})");
    }
    find_in(&cache_dir()?, &repo, revision)
}

/// A single path component: no separators, not `.` or `..`.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\'])
}

/// The weights file of `repo` at `revision` in the cache folder `cache`.
fn find_in(cache: &Path, repo: &str, revision: &str) -> Result<PathBuf> {
    let folder = cache.join(format!("models--{}", repo.replace('/', "--")));
    let missing = |what: String| {
        anyhow!(
            "hf:{repo}: {what} in the Hugging Face cache (searched {}); offline, nothing is downloaded: fill it with \
             {}",
            folder.display(),
            fill_command(repo)
        )
    };
    if !folder.is_dir() {
        return Err(missing("not".into()));
    }
    // A revision is a commit (its snapshot's name) or a name under refs/ (a branch or a tag).
    let commit = match std::fs::read_to_string(folder.join("refs").join(revision)) {
        Ok(text) => text.trim().to_string(),
        Err(_) if is_commit(revision) => revision.to_string(),
        Err(_) => return Err(missing(format!("no revision \"{revision}\" (refs/{revision})"))),
    };
    if !is_plain_name(&commit) {
        bail!("hf:{repo}: refs/{revision} in {} does not name a commit", folder.display());
    }
    let snapshot = folder.join("snapshots").join(&commit);
    WEIGHTS_FILES
        .iter()
        .map(|name| snapshot.join(name))
        .find(|path| path.is_file())
        .ok_or_else(|| missing(format!("no {} in snapshot {commit}", WEIGHTS_FILES.join(" or "))))
}

fn is_commit(revision: &str) -> bool {
    revision.len() == 40 && revision.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The Python one-liner that puts `repo` into the cache.
pub fn fill_command(repo: &str) -> String {
    match repo.strip_prefix("timm/") {
        Some(model) => format!("python -c \"import timm; timm.create_model('{model}', pretrained=True)\""),
        None => format!("python -c \"from huggingface_hub import snapshot_download; snapshot_download('{repo}')\""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cache folder with one repository at one commit, `main` naming it, holding `files`.
    fn cache(name: &str, files: &[&str]) -> PathBuf {
        let root = std::env::temp_dir().join(format!("sk-exp-hf-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let repo = root.join("models--timm--skresnext50_32x4d.ra_in1k");
        let commit = "0123456789abcdef0123456789abcdef01234567";
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::create_dir_all(repo.join("snapshots").join(commit)).unwrap();
        std::fs::write(repo.join("refs/main"), format!("{commit}\n")).unwrap();
        for file in files {
            std::fs::write(repo.join("snapshots").join(commit).join(file), b"").unwrap();
        }
        root
    }

    #[test]
    fn finds_the_snapshot_that_main_names_preferring_safetensors() {
        let root = cache("both", &["pytorch_model.bin", "model.safetensors"]);
        let found = find_in(&root, "timm/skresnext50_32x4d.ra_in1k", "main").unwrap();
        assert!(found.ends_with("snapshots/0123456789abcdef0123456789abcdef01234567/model.safetensors"), "{found:?}");
        let by_commit = find_in(&root, "timm/skresnext50_32x4d.ra_in1k", "0123456789abcdef0123456789abcdef01234567");
        assert_eq!(by_commit.unwrap(), found);
        let root = cache("bin", &["pytorch_model.bin"]);
        let found = find_in(&root, "timm/skresnext50_32x4d.ra_in1k", "main").unwrap();
        assert!(found.ends_with("pytorch_model.bin"), "{found:?}");
    }

    #[test]
    fn a_missing_entry_names_the_folder_and_the_command_that_fills_it() {
        let root = cache("empty", &[]);
        let err = find_in(&root, "timm/skresnext50_32x4d.ra_in1k", "main").unwrap_err().to_string();
        assert!(err.contains("no model.safetensors or pytorch_model.bin in snapshot 0123"), "{err}");
        let err = find_in(&root, "timm/seresnext50_32x4d.racm_in1k", "main").unwrap_err().to_string();
        assert!(err.starts_with("hf:timm/seresnext50_32x4d.racm_in1k: not in the Hugging Face cache"), "{err}");
        assert!(err.contains(&root.join("models--timm--seresnext50_32x4d.racm_in1k").display().to_string()), "{err}");
        assert!(err.contains("timm.create_model('seresnext50_32x4d.racm_in1k', pretrained=True)"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(fill_command("org/model").contains("snapshot_download('org/model')"));
    }

    #[test]
    fn default_needs_a_model_with_a_timm_counterpart_and_names_must_be_plain() {
        assert_eq!(timm_model("sknet50"), Some("skresnext50_32x4d.ra_in1k"));
        assert!(resolve("default", None).unwrap_err().to_string().contains("needs --model"));
        assert!(resolve("default", Some("sknet29")).unwrap_err().to_string().contains("no timm counterpart"));
        for bad in ["timm", "timm/../x", "a/b/c", "timm/x@../y"] {
            assert!(resolve(bad, None).unwrap_err().to_string().contains("expected hf:OWNER/NAME"), "{bad}");
        }
        assert_eq!(repository(Path::new("hf:timm/x")), Some("timm/x"));
        assert_eq!(repository(Path::new("weights/x.pth")), None);
    }
}
