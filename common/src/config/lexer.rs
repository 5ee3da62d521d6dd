//! Tokens of iked.conf with their positions.

use super::Location;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenKind {
    /// A bare word: keyword, number, address, identifier.
    Word(String),
    /// A double-quoted string, quotes removed.
    Quoted(String),
    /// `=` of a macro definition.
    Equals,
    /// End of a statement.
    Newline,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub kind: TokenKind,
    pub location: Location,
}

pub fn is_macro_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_word_char(c: char) -> bool {
    !c.is_whitespace() && !matches!(c, '#' | '"' | '=' | '{' | '}' | ',')
}

/// Splits `text` into tokens. Errors carry the position of the offending
/// character. `\` at the end of a line continues the statement.
pub fn tokenize(file: &str, text: &str) -> Result<Vec<Token>, (Location, String)> {
    let mut tokens = Vec::new();
    let (mut line, mut col) = (1u32, 1u32);
    let mut chars = text.chars().peekable();
    let at = |line, col| Location {
        file: file.to_string(),
        line,
        col,
    };
    while let Some(&c) = chars.peek() {
        let start = at(line, col);
        match c {
            '\n' => {
                chars.next();
                tokens.push(Token {
                    kind: TokenKind::Newline,
                    location: start,
                });
                line += 1;
                col = 1;
            }
            '#' => {
                while let Some(&c) = chars.peek() {
                    if c == '\n' {
                        break;
                    }
                    chars.next();
                    col += 1;
                }
            }
            '\\' => {
                chars.next();
                match chars.peek() {
                    Some('\n') => {
                        chars.next();
                        line += 1;
                        col = 1;
                    }
                    _ => return Err((start, "'\\' must end the line".into())),
                }
            }
            '"' => {
                chars.next();
                col += 1;
                let mut value = String::new();
                loop {
                    match chars.next() {
                        Some('"') => {
                            col += 1;
                            break;
                        }
                        Some('\n') | None => {
                            return Err((start, "unterminated quoted string".into()))
                        }
                        Some(c) => {
                            col += 1;
                            value.push(c);
                        }
                    }
                }
                tokens.push(Token {
                    kind: TokenKind::Quoted(value),
                    location: start,
                });
            }
            '=' => {
                chars.next();
                col += 1;
                tokens.push(Token {
                    kind: TokenKind::Equals,
                    location: start,
                });
            }
            // `{ a, b }` lists (iked.conf(5) from/to): one word each.
            '{' | '}' | ',' => {
                chars.next();
                col += 1;
                tokens.push(Token {
                    kind: TokenKind::Word(c.to_string()),
                    location: start,
                });
            }
            c if c.is_whitespace() => {
                chars.next();
                col += 1;
            }
            c if is_word_char(c) => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if !is_word_char(c) {
                        break;
                    }
                    word.push(c);
                    chars.next();
                    col += 1;
                }
                tokens.push(Token {
                    kind: TokenKind::Word(word),
                    location: start,
                });
            }
            c => return Err((start, format!("unexpected character {c:?}"))),
        }
    }
    tokens.push(Token {
        kind: TokenKind::Newline,
        location: at(line, col),
    });
    Ok(tokens)
}
