//! A child's side of the two-phase reload (parent/src/daemon/reload.rs):
//! the configuration it prepared waits here until the parent commits or
//! aborts that generation.

/// The prepared configuration of one generation, at most one at a time.
#[derive(Debug, Default)]
pub struct Staged<T> {
    staged: Option<(u64, T)>,
}

impl<T> Staged<T> {
    pub fn new() -> Staged<T> {
        Staged { staged: None }
    }

    /// Keeps `config` for `generation`; one prepared earlier and never
    /// committed is dropped (the parent has moved on).
    pub fn prepare(&mut self, generation: u64, config: T) {
        self.staged = Some((generation, config));
    }

    /// Takes the configuration prepared for `generation`. A commit of
    /// anything else is the parent's mistake: nothing is applied.
    pub fn commit(&mut self, generation: u64) -> Result<T, String> {
        match self.staged.take() {
            Some((staged, config)) if staged == generation => Ok(config),
            Some((staged, config)) => {
                let message = format!(
                    "commit of configuration {generation}, but {staged} is the one prepared"
                );
                self.staged = Some((staged, config));
                Err(message)
            }
            None => Err(format!(
                "commit of configuration {generation}, but none is prepared"
            )),
        }
    }

    /// Drops the configuration prepared for `generation`, if that is the
    /// one held; whether one was dropped.
    pub fn abort(&mut self, generation: u64) -> bool {
        if matches!(self.staged, Some((staged, _)) if staged == generation) {
            self.staged = None;
            true
        } else {
            false
        }
    }

    pub fn is_empty(&self) -> bool {
        self.staged.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_only_the_generation_prepared() {
        let mut staged = Staged::new();
        assert!(staged.commit(1).is_err());
        staged.prepare(2, "two");
        assert!(staged
            .commit(3)
            .unwrap_err()
            .contains("2 is the one prepared"));
        assert_eq!(staged.commit(2), Ok("two"));
        assert!(staged.is_empty());
    }

    #[test]
    fn abort_drops_only_its_generation() {
        let mut staged = Staged::new();
        staged.prepare(4, "four");
        assert!(!staged.abort(3));
        assert!(!staged.is_empty());
        assert!(staged.abort(4));
        assert!(staged.is_empty());
        assert!(staged.commit(4).is_err());
    }
}
