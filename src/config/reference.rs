//! `authd config reference`: every setting of `config/default.toml` with its default, its
//! variables and its comment, as the Markdown table in docs/configuration.md.

/// The plain variables of the seed apps and the setting each one fills.
pub const SEED_VARIABLES: &[(&str, &str)] = &[
    ("DATABASE_URL", "database.url"),
    ("DB_POOL_SIZE", "database.pool_size"),
    ("REDIS_URL", "cache.url"),
    ("PORT", "server.port"),
    ("JWT_SECRET", "tokens.jwt_secret"),
    ("FRONTEND_URL", "app.frontend_url"),
    ("RATE_LIMIT_WINDOW", "rate_limit.general_window_seconds"),
    ("RATE_LIMIT_MAX", "rate_limit.general_max"),
];

/// The defaults file compiled in: the source of `authd config reference`.
const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// One documented setting of `config/default.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferenceEntry {
    /// `section.key` (or `section.sub.key`).
    pub key: String,
    /// As written in the file; `None` for an optional key that is unset by default.
    pub default: Option<String>,
    pub meaning: String,
}

/// Every setting with its default and meaning, read from `config/default.toml` (the comment lines
/// right above a key are its meaning; `# key = value` marks an optional, unset key).
pub fn reference_entries() -> Vec<ReferenceEntry> {
    let mut entries = Vec::new();
    let mut section = String::new();
    let mut comment: Vec<&str> = Vec::new();
    for line in DEFAULT_TOML.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
            comment.clear();
            continue;
        }
        if line.is_empty() {
            comment.clear();
            continue;
        }
        let (optional, assignment) = match line.strip_prefix('#') {
            Some(text) => {
                let text = text.trim();
                let is_key = text.split_once(" = ").is_some_and(|(k, _)| {
                    !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                });
                if !is_key || section.is_empty() {
                    comment.push(text);
                    continue;
                }
                (true, text)
            }
            None => (false, line),
        };
        let Some((key, value)) = assignment.split_once(" = ") else {
            continue;
        };
        entries.push(ReferenceEntry {
            key: format!("{section}.{}", key.trim()),
            default: (!optional).then(|| value.trim().to_string()),
            meaning: comment.join(" "),
        });
        comment.clear();
    }
    entries
}

/// The environment variables that set `key`: `AUTHD__SECTION__KEY`, and a seed variable if any.
pub fn variables_for(key: &str) -> Vec<String> {
    let mut vars = vec![format!(
        "AUTHD__{}",
        key.replace('.', "__").to_ascii_uppercase()
    )];
    vars.extend(
        SEED_VARIABLES
            .iter()
            .filter(|(_, setting)| *setting == key)
            .map(|(var, _)| var.to_string()),
    );
    vars
}

/// The configuration table of docs/configuration.md, generated.
pub fn reference_markdown() -> String {
    let mut out = String::from(
        "| setting | default | environment variables | meaning |\n|---|---|---|---|\n",
    );
    for entry in reference_entries() {
        let default = entry
            .default
            .map(|d| format!("`{}`", d.replace('|', "\\|")))
            .unwrap_or_else(|| "unset".into());
        let vars = variables_for(&entry.key)
            .iter()
            .map(|v| format!("`{v}`"))
            .collect::<Vec<_>>()
            .join(", ");
        out.push_str(&format!(
            "| `{}` | {default} | {vars} | {} |\n",
            entry.key,
            entry.meaning.replace('|', "\\|")
        ));
    }
    out
}
