//! Reading config files: one option per line, `#` comments, a UTF-8 byte-order mark
//! skipped, `include_dir` read in name order, and which listener an option belongs to
//! (Mosquitto's rule: a listener option after a `listener` line is that listener's).
//! Every error of every file is collected, so one run shows them all.

use super::{options, Config, ListenerConfig};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

/// How deep `include_dir` may nest (a directory that includes itself stops here).
const INCLUDE_DEPTH_MAX: usize = 8;

/// One config error: the file, the line when there is one, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file.display(), line, self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// Every error found, one per line when displayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Which part of the file a line is in.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Section {
    /// Before any `listener` or `connection` line.
    Global,
    /// After a `listener` line: the index of that listener.
    Listener(usize),
    /// After a bridge's `connection` line.
    Bridge,
}

/// Options Mosquitto applies to its default listener (the one `port` makes), seen before
/// any `listener` line.
#[derive(Default)]
pub(super) struct DefaultListener {
    /// The `port` listener's index, once there is one.
    pub index: Option<usize>,
    pub bind_address: Option<IpAddr>,
    pub bind_interface: Option<String>,
    pub socket_domain: Option<Domain>,
    /// Where the first of these options was, for the listener's `origin`.
    pub origin: Option<String>,
}

/// `socket_domain`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Domain {
    Ipv4,
    Ipv6,
}

/// A pass over one config file and what it includes.
pub(crate) struct Parser<'a> {
    pub(super) config: &'a mut Config,
    errors: Vec<ConfigError>,
    pub(super) section: Section,
    /// The first `log_type` (and `log_dest`) line replaces the defaults; later ones add.
    pub(super) log_types_set: bool,
    pub(super) log_dests_set: bool,
    pub(super) default_listener: DefaultListener,
    /// `file:line` of the line being applied.
    pub(super) here: String,
    depth: usize,
}

impl<'a> Parser<'a> {
    pub fn new(config: &'a mut Config) -> Self {
        Parser {
            config,
            errors: Vec::new(),
            section: Section::Global,
            log_types_set: false,
            log_dests_set: false,
            default_listener: DefaultListener::default(),
            here: String::new(),
            depth: 0,
        }
    }

    /// Reads and applies one file; a file that cannot be read is one error.
    pub fn file(mut self, path: &Path) -> Self {
        self.read_file(path, None);
        self
    }

    fn read_file(&mut self, path: &Path, from: Option<(PathBuf, usize)>) {
        match std::fs::read(path) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                self.apply(&text, path);
            }
            Err(e) => {
                let message = format!("cannot read config file {}: {}", path.display(), e);
                let (file, line) = match from {
                    Some((f, l)) => (f, Some(l)),
                    None => (path.to_path_buf(), None),
                };
                let message = if line.is_some() { message } else { format!("cannot read it: {e}") };
                self.errors.push(ConfigError { file, line, message });
            }
        }
    }

    /// Applies config text; `path` names it in errors.
    pub fn text(mut self, text: &str, path: &Path) -> Self {
        self.apply(text, path);
        self
    }

    fn apply(&mut self, text: &str, path: &Path) {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (option, rest) = match line.split_once(char::is_whitespace) {
                Some((o, r)) => (o, r.trim()),
                None => (line, ""),
            };
            let args: Vec<&str> = rest.split_whitespace().collect();
            self.here = format!("{}:{}", path.display(), i + 1);
            let result = if option == "include_dir" {
                self.include_dir(rest, path, i + 1)
            } else {
                options::apply(self, option, rest, &args)
            };
            if let Err(message) = result {
                self.errors.push(ConfigError {
                    file: path.to_path_buf(),
                    line: Some(i + 1),
                    message: format!("{option}: {message}"),
                });
            }
        }
    }

    /// Mosquitto's `include_dir`: every `*.conf` file of the directory, in name order.
    fn include_dir(&mut self, rest: &str, path: &Path, line: usize) -> Result<(), String> {
        if rest.is_empty() {
            return Err("needs a directory".into());
        }
        if self.depth >= INCLUDE_DEPTH_MAX {
            return Err(format!("include_dir nested more than {INCLUDE_DEPTH_MAX} deep"));
        }
        let dir = Path::new(rest);
        let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot read directory {rest}: {e}"))?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "conf") && p.is_file())
            .collect();
        files.sort();
        self.depth += 1;
        for f in files {
            self.read_file(&f, Some((path.to_path_buf(), line)));
        }
        self.depth -= 1;
        Ok(())
    }

    /// The listener a listener-level option applies to now, if any.
    pub(super) fn current_listener(&mut self) -> Option<&mut ListenerConfig> {
        match self.section {
            Section::Listener(i) => self.config.listeners.get_mut(i),
            _ => None,
        }
    }

    /// Checks what needs the whole file (duplicate listeners), then reports.
    pub fn finish(mut self) -> Result<(), super::ConfigErrors> {
        self.settle_default_listener();
        self.check_duplicate_listeners();
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(self.errors))
        }
    }

    /// The default listener's options (`bind_address`, `bind_interface`, `socket_domain`
    /// before any `listener`) apply to the `port` listener; with none of those and no
    /// `port` line, Mosquitto makes one on 1883, and so does ringmq.
    fn settle_default_listener(&mut self) {
        let d = std::mem::take(&mut self.default_listener);
        let any = d.bind_address.is_some() || d.bind_interface.is_some() || d.socket_domain.is_some();
        let index = match d.index {
            Some(i) => i,
            None if any => {
                let port = super::DEFAULT_PORT;
                let mut l = ListenerConfig::on(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port));
                l.addrs = options::every_address(port);
                l.origin = d.origin.clone();
                self.config.listeners.push(l);
                self.config.listeners_in_file = true;
                self.config.listeners.len() - 1
            }
            None => return,
        };
        let l = &mut self.config.listeners[index];
        if let Some(ip) = d.bind_address {
            let port = l.addrs.first().map_or(super::DEFAULT_PORT, |a| a.port());
            l.addrs = vec![SocketAddr::new(ip, port)];
        }
        if let Some(domain) = d.socket_domain {
            l.addrs.retain(|a| a.is_ipv6() == (domain == Domain::Ipv6));
            if l.addrs.is_empty() {
                let where_ = l.origin.clone().unwrap_or_default();
                self.errors.push(ConfigError {
                    file: PathBuf::from(where_),
                    line: None,
                    message:
                        "socket_domain: the default listener's bind_address is of the other address family"
                            .into(),
                });
            }
        }
        if d.bind_interface.is_some() {
            l.bind_interface = d.bind_interface;
        }
    }

    /// Two listeners on one port whose addresses overlap would both bind (every shard's
    /// socket has SO_REUSEPORT) and split the connections between them: refused, as
    /// Mosquitto refuses them ("Address already in use").
    fn check_duplicate_listeners(&mut self) {
        let ls = &self.config.listeners;
        for (j, b) in ls.iter().enumerate() {
            for a in &ls[..j] {
                let clash = b.addrs.iter().find(|x| a.addrs.iter().any(|y| overlaps(x, y)));
                if let Some(addr) = clash {
                    let (file, line) = split_origin(b.origin.as_deref());
                    self.errors.push(ConfigError {
                        file,
                        line,
                        message: format!(
                            "listener: port {} on {} is already a listener ({}): two listeners cannot share an address and port",
                            addr.port(),
                            addr.ip(),
                            a.origin.as_deref().unwrap_or("an earlier line")
                        ),
                    });
                    break;
                }
            }
        }
    }
}

/// Whether two bind addresses take the same port: same family, same port (not 0), and
/// the same address or one of them the family's wildcard.
fn overlaps(a: &SocketAddr, b: &SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && a.is_ipv6() == b.is_ipv6()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

fn split_origin(origin: Option<&str>) -> (PathBuf, Option<usize>) {
    match origin.and_then(|o| o.rsplit_once(':')) {
        Some((file, line)) => (PathBuf::from(file), line.parse().ok()),
        None => (PathBuf::from("command line"), None),
    }
}
