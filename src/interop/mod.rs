//! Interop with PyTorch: TorchScript files in and out, `.npy` tensors, the Hugging Face cache, and libtorch's
//! errors as one line.
pub mod export;
pub mod hf;
pub mod npy;
pub mod torchscript;

use tch::TchError;

/// The cause of a libtorch error in one line. libtorch's messages carry a C++ backtrace ("Exception raised
/// from ...", "frame #0: ...") and, for TorchScript, the script's traceback before the real error; a user
/// needs only the error itself.
pub fn torch_message(err: &TchError) -> String {
    let TchError::Torch(text) = err else { return err.to_string() };
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Exception raised from"))
        .filter(|l| !l.is_empty())
        .collect();
    // A TorchScript traceback ends with the Python-style error line ("RuntimeError: ...").
    let cause = if text.contains("TorchScript") {
        lines.iter().rev().find_map(|l| python_error(l)).or_else(|| lines.last().copied())
    } else {
        lines.first().copied()
    };
    cause.unwrap_or("libtorch error without a message").to_string()
}

/// The message of a line like `RuntimeError: message` (any `...Error:` or `...Exception:` prefix).
fn python_error(line: &str) -> Option<&str> {
    let (kind, message) = line.split_once(": ")?;
    let is_kind = !kind.is_empty() && kind.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_');
    (is_kind && (kind.ends_with("Error") || kind.ends_with("Exception"))).then_some(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_cause_and_drops_the_backtraces() {
        let cxx = "PytorchStreamReader failed reading zip archive: failed finding central directory\n\
                   Exception raised from valid at inline_container.cc:185 (most recent call first):\n\
                   frame #0: c10::Error::Error(...) + 0x9d (0x7f in libc10.so)\n";
        assert_eq!(
            torch_message(&TchError::Torch(cxx.into())),
            "PytorchStreamReader failed reading zip archive: failed finding central directory"
        );
        let script = "The following operation failed in the TorchScript interpreter.\n\
                      Traceback of TorchScript (most recent call last):\n\
                      resnet.py(268): _forward_impl\n\
                      RuntimeError: expected input[1, 4, 64, 64] to have 3 channels, but got 4 channels instead\n";
        assert_eq!(
            torch_message(&TchError::Torch(script.into())),
            "expected input[1, 4, 64, 64] to have 3 channels, but got 4 channels instead"
        );
        assert_eq!(torch_message(&TchError::Shape("bad".into())), "invalid shape: bad");
    }
}
