//! Statements of iked.conf.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::lexer::{is_macro_name, tokenize, Token, TokenKind};
use super::{read_capped, Config, ConfigError, InitiationMode, Location, MAX_INCLUDE_DEPTH};
use crate::kernel::KernelSocketKind;

struct Parser {
    config: Config,
    macros: HashMap<String, String>,
    /// Names defined with `-D`: as in OpenBSD, they win over the file's.
    command_line: std::collections::HashSet<String>,
    /// Every policy's `config address` pools: (policy, pool, where).
    pools: Vec<(String, super::Prefix, Location)>,
    /// The users EAP client policies authenticate as, checked once the
    /// whole file (and what it includes) is read: `user` may come later.
    eap_client_users: Vec<(String, String, Location)>,
    /// The names of `config.users`, for the duplicate check.
    user_names: std::collections::HashSet<String>,
    /// Bytes of names and passwords of `config.users`.
    users_bytes: usize,
    /// The tunables `set` gave, with where, for the checks between them.
    tunables_at: Vec<(String, Location)>,
}

/// Parses the file at `path` with `-D` macros already defined.
pub fn parse_file(path: &Path, macros: &[(String, String)]) -> Result<Config, ConfigError> {
    let mut parser = Parser::new(macros);
    parser.file(path, 0, None)?;
    parser.finish()
}

/// Parses `text` as if read from a file called `name` (includes are resolved
/// relative to the current directory).
pub fn parse_str(
    name: &str,
    text: &str,
    macros: &[(String, String)],
) -> Result<Config, ConfigError> {
    let mut parser = Parser::new(macros);
    parser.text(name, text, Path::new("."), 0)?;
    parser.finish()
}

fn error(location: &Location, message: impl Into<String>) -> ConfigError {
    ConfigError {
        location: location.clone(),
        message: message.into(),
    }
}

impl Parser {
    fn new(macros: &[(String, String)]) -> Parser {
        Parser {
            config: Config::default(),
            macros: macros.iter().cloned().collect(),
            command_line: macros.iter().map(|(name, _)| name.clone()).collect(),
            pools: Vec::new(),
            eap_client_users: Vec::new(),
            user_names: Default::default(),
            users_bytes: 0,
            tunables_at: Vec::new(),
        }
    }

    /// The checks that need the whole file.
    fn finish(self) -> Result<Config, ConfigError> {
        for (policy, user, srcid_at) in &self.eap_client_users {
            if !self.user_names.contains(user) {
                return Err(error(
                    srcid_at,
                    format!(
                        "policy '{policy}': as initiator, 'eap' authenticates as the user its \
                         srcid names, but there is no line 'user \"{user}\" \"PASSWORD\"'"
                    ),
                ));
            }
        }
        super::settings::check(&self.config, &self.tunables_at)?;
        super::checks::check_written(&self.config)?;
        Ok(self.config)
    }

    /// Whether a new policy's pools overlap another policy's: leases are
    /// per policy, so two policies would hand one address to two clients.
    fn check_pools(
        &self,
        policy: &str,
        pools: &[(super::Prefix, Location)],
    ) -> Result<(), ConfigError> {
        for (pool, at) in pools {
            if let Some((other, other_pool, other_at)) = self
                .pools
                .iter()
                .find(|(_, p, _)| super::remote_access::overlap(p, pool))
            {
                return Err(error(
                    at,
                    format!(
                        "policy '{policy}': address pool {pool} overlaps pool {other_pool} of \
                         policy '{other}' ({other_at}): the two would hand one address to two \
                         clients"
                    ),
                ));
            }
        }
        Ok(())
    }

    fn file(
        &mut self,
        path: &Path,
        depth: usize,
        from: Option<&Location>,
    ) -> Result<(), ConfigError> {
        let name = path.display().to_string();
        // The text holds the PSKs: zeroed once parsed.
        let text = read_capped(path)
            .map(zeroize::Zeroizing::new)
            .map_err(|message| ConfigError {
                location: from.cloned().unwrap_or(Location {
                    file: name.clone(),
                    line: 0,
                    col: 0,
                }),
                message: format!("{name}: {message}"),
            })?;
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        self.text(&name, &text, &base, depth)
    }

    fn text(
        &mut self,
        name: &str,
        text: &str,
        base: &Path,
        depth: usize,
    ) -> Result<(), ConfigError> {
        let tokens = tokenize(name, text)
            .map_err(|(location, message)| ConfigError { location, message })?;
        for statement in tokens.split(|t| t.kind == TokenKind::Newline) {
            if statement.is_empty() {
                continue;
            }
            self.statement(statement, base, depth)?;
        }
        Ok(())
    }

    /// Replaces `$name` words by the macro's value.
    fn expand(&self, token: &Token) -> Result<TokenKind, ConfigError> {
        match &token.kind {
            TokenKind::Word(w) if w.starts_with('$') => {
                let name = &w[1..];
                match self.macros.get(name) {
                    Some(value) => Ok(TokenKind::Word(value.clone())),
                    None => Err(error(
                        &token.location,
                        format!("macro '{name}' is not defined"),
                    )),
                }
            }
            other => Ok(other.clone()),
        }
    }

    fn statement(
        &mut self,
        tokens: &[Token],
        base: &Path,
        depth: usize,
    ) -> Result<(), ConfigError> {
        let first = &tokens[0];
        // Macro definition: name = value
        if let (
            TokenKind::Word(name),
            Some(Token {
                kind: TokenKind::Equals,
                ..
            }),
        ) = (&first.kind, tokens.get(1))
        {
            if !is_macro_name(name) {
                return Err(error(
                    &first.location,
                    format!("invalid macro name '{name}'"),
                ));
            }
            let value = match tokens.get(2) {
                Some(t) => match self.expand(t)? {
                    TokenKind::Word(v) | TokenKind::Quoted(v) => v,
                    _ => return Err(error(&t.location, "macro value expected")),
                },
                None => return Err(error(&tokens[1].location, "macro value expected after '='")),
            };
            if let Some(extra) = tokens.get(3) {
                return Err(error(&extra.location, "unexpected text after macro value"));
            }
            if !self.command_line.contains(name) {
                self.macros.insert(name.clone(), value);
            }
            return Ok(());
        }
        let words: Vec<(TokenKind, &Location)> = tokens
            .iter()
            .map(|t| Ok((self.expand(t)?, &t.location)))
            .collect::<Result<_, ConfigError>>()?;
        let Some((TokenKind::Word(keyword), location)) = words.first() else {
            return Err(error(
                &first.location,
                "statement must start with a keyword",
            ));
        };
        match keyword.as_str() {
            "set" => self.set(&words[1..], location),
            "include" => {
                let Some((TokenKind::Quoted(target) | TokenKind::Word(target), at)) = words.get(1)
                else {
                    return Err(error(location, "include needs a file name"));
                };
                if let Some((_, extra)) = words.get(2) {
                    return Err(error(extra, "unexpected text after include file"));
                }
                if depth + 1 > MAX_INCLUDE_DEPTH {
                    return Err(error(
                        at,
                        format!("includes nested deeper than {MAX_INCLUDE_DEPTH}"),
                    ));
                }
                let path = base.join(target);
                self.file(&path, depth + 1, Some(at))
            }
            "ikev2" => {
                let index = self.config.policies.len();
                let super::policy_parser::ParsedPolicy {
                    policy,
                    secret,
                    pools,
                    later,
                } = super::policy_parser::parse_policy(&words[1..], location, index)?;
                if self.config.policies.iter().any(|p| p.name == policy.name) {
                    return Err(error(
                        location,
                        format!("duplicate policy name '{}'", policy.name),
                    ));
                }
                self.check_pools(&policy.name, &pools)?;
                self.pools.extend(
                    pools
                        .into_iter()
                        .map(|(pool, at)| (policy.name.clone(), pool, at)),
                );
                self.eap_client_users.extend(later.eap_client_user);
                if let Some(secret) = secret {
                    self.config
                        .psks
                        .push((policy.name.clone(), super::PreSharedKey::new(secret)));
                }
                self.config
                    .sources
                    .record(super::checks::PolicySource::scan(
                        &policy.name,
                        &words[1..],
                        location,
                    ));
                self.config.policies.push(policy);
                Ok(())
            }
            "user" => {
                let user = super::remote_access::parse_user(&words[1..], location)?;
                if self.user_names.contains(&user.name) {
                    return Err(error(location, format!("user {:?} given twice", user.name)));
                }
                if self.config.users.len() >= super::remote_access::MAX_USERS {
                    return Err(error(
                        location,
                        format!("more than {} 'user' lines", super::remote_access::MAX_USERS),
                    ));
                }
                self.users_bytes += user.name.len() + user.password.expose().len();
                if self.users_bytes > super::remote_access::MAX_USERS_BYTES {
                    return Err(error(
                        location,
                        format!(
                            "the 'user' lines hold more than {} MiB of names and passwords",
                            super::remote_access::MAX_USERS_BYTES >> 20
                        ),
                    ));
                }
                self.user_names.insert(user.name.clone());
                self.config.users.push(user);
                Ok(())
            }
            other => Err(error(
                location,
                format!("syntax error: unknown keyword '{other}'"),
            )),
        }
    }

    fn set(
        &mut self,
        words: &[(TokenKind, &Location)],
        set_at: &Location,
    ) -> Result<(), ConfigError> {
        let Some((TokenKind::Word(option), at)) = words.first() else {
            return Err(error(set_at, "set needs an option"));
        };
        let argument = words.get(1);
        let argument_count = match option.as_str() {
            "active" => {
                self.config.mode = InitiationMode::Active;
                0
            }
            "passive" => {
                self.config.mode = InitiationMode::Passive;
                0
            }
            "dpd_check_interval" => {
                let Some((TokenKind::Word(value), value_at)) = argument else {
                    return Err(error(at, "dpd_check_interval needs a number of seconds"));
                };
                self.config.dpd_check_interval = value
                    .parse::<u32>()
                    .ok()
                    .filter(|&n| n <= 86_400)
                    .ok_or_else(|| {
                        error(
                            value_at,
                            format!(
                                "invalid dpd_check_interval '{value}': expected 0..86400 seconds"
                            ),
                        )
                    })?;
                1
            }
            "control_group" => {
                let (name, value_at) = match argument {
                    Some((TokenKind::Word(name) | TokenKind::Quoted(name), value_at)) => {
                        (name, value_at)
                    }
                    Some((_, value_at)) => {
                        return Err(error(value_at, "set control_group needs a group name"))
                    }
                    None => return Err(error(at, "set control_group needs a group name")),
                };
                if !super::is_group_name(name) {
                    return Err(error(
                        value_at,
                        format!(
                            "invalid group name {name:?}: expected at most {} letters, \
                             digits, '_', '-' or '.'",
                            super::MAX_GROUP_NAME
                        ),
                    ));
                }
                self.config.control_group = Some(name.clone());
                1
            }
            "routes" => {
                self.config.routing.enabled = true;
                0
            }
            "noroutes" => {
                self.config.routing.enabled = false;
                0
            }
            "routing_table" => {
                let Some((TokenKind::Word(value), value_at)) = argument else {
                    return Err(error(at, "routing_table needs a table number"));
                };
                self.config.routing.table = value
                    .parse::<u32>()
                    .ok()
                    .filter(|&n| crate::routing::is_usable_table(n))
                    .ok_or_else(|| {
                        error(
                            value_at,
                            format!(
                                "invalid routing_table '{value}': expected a table number \
                                 other than 0, 253 (default), 254 (main) and 255 (local)"
                            ),
                        )
                    })?;
                1
            }
            "certdir" => {
                let (dir, value_at) = match argument {
                    Some((TokenKind::Word(dir) | TokenKind::Quoted(dir), value_at)) => {
                        (dir, value_at)
                    }
                    Some((_, value_at)) => {
                        return Err(error(value_at, "set certdir needs a directory"))
                    }
                    None => return Err(error(at, "set certdir needs a directory")),
                };
                // Absolute: the daemon reads it from / and ikectl shows it;
                // a relative one would depend on where iked was started.
                if !dir.starts_with('/') || dir.contains('\0') {
                    return Err(error(
                        value_at,
                        format!("invalid certdir {dir:?}: expected an absolute directory path"),
                    ));
                }
                self.config.certdir = dir.clone();
                1
            }
            "fragmentation" => {
                self.config.fragmentation.enabled = true;
                0
            }
            "nofragmentation" => {
                self.config.fragmentation.enabled = false;
                0
            }
            "fragment_size" => {
                let Some((TokenKind::Word(value), value_at)) = argument else {
                    return Err(error(at, "fragment_size needs a number of bytes"));
                };
                self.config.fragmentation.max_datagram = value
                    .parse::<u16>()
                    .ok()
                    .filter(|n| super::FRAGMENT_SIZE_RANGE.contains(n))
                    .ok_or_else(|| {
                        error(
                            value_at,
                            format!(
                                "invalid fragment_size '{value}': expected {}..{} bytes \
                                 (the largest IP datagram of an IKE message, headers included)",
                                super::FRAGMENT_SIZE_RANGE.start(),
                                super::FRAGMENT_SIZE_RANGE.end()
                            ),
                        )
                    })?;
                1
            }
            "mobike" => {
                self.config.mobike = true;
                0
            }
            "nomobike" => {
                self.config.mobike = false;
                0
            }
            "kernel" => {
                let kind = match argument {
                    Some((TokenKind::Word(v), _)) if v == "xfrm" => KernelSocketKind::Xfrm,
                    Some((TokenKind::Word(v), _)) if v == "pfkey" => KernelSocketKind::Pfkey,
                    Some((_, value_at)) => {
                        return Err(error(value_at, "expected 'xfrm' or 'pfkey'"))
                    }
                    None => return Err(error(at, "set kernel needs 'xfrm' or 'pfkey'")),
                };
                self.config.kernel = Some(kind);
                1
            }
            other => match super::settings::set_option(&mut self.config, other, argument, at) {
                Some(taken) => {
                    let taken = taken?;
                    if taken > 0 {
                        self.tunables_at.push((other.to_string(), (*at).clone()));
                    }
                    taken
                }
                None => {
                    return Err(error(
                        at,
                        format!("syntax error: unknown option 'set {other}'"),
                    ))
                }
            },
        };
        if let Some((_, extra)) = words.get(1 + argument_count) {
            return Err(error(
                extra,
                format!("unexpected text after 'set {option}'"),
            ));
        }
        Ok(())
    }
}
