//! The password policy: 8–128 characters, not the email, not guessable (zxcvbn score ≥ 2).

pub const MIN_CHARS: usize = 8;
pub const MAX_CHARS: usize = 128;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordError {
    #[error("password must be at least 8 characters")]
    TooShort,
    #[error("password must be at most 128 characters")]
    TooLong,
    #[error("password must not be the email address")]
    EqualsEmail,
    #[error("password is too weak: {0}")]
    Weak(String),
}

/// Checks a new password against the policy; `user_inputs` (email, name) count as guessable.
pub fn check_new_password(password: &str, email: &str, user_inputs: &[&str]) -> Result<(), PasswordError> {
    let chars = password.chars().count();
    if chars < MIN_CHARS {
        return Err(PasswordError::TooShort);
    }
    if chars > MAX_CHARS {
        return Err(PasswordError::TooLong);
    }
    if password.trim().eq_ignore_ascii_case(email.trim()) {
        return Err(PasswordError::EqualsEmail);
    }
    let mut inputs: Vec<&str> = vec![email];
    if let Some((local, _)) = email.split_once('@') {
        inputs.push(local);
    }
    inputs.extend_from_slice(user_inputs);
    let estimate = zxcvbn::zxcvbn(password, &inputs);
    if u8::from(estimate.score()) < 2 {
        let hint = estimate
            .feedback()
            .and_then(|f| f.warning().map(|w| w.to_string()).or_else(|| f.suggestions().first().map(|s| s.to_string())))
            .unwrap_or_else(|| "add more words or characters that are hard to guess".to_owned());
        return Err(PasswordError::Weak(hint));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_bounds() {
        assert_eq!(check_new_password("short", "a@b.co", &[]), Err(PasswordError::TooShort));
        let long = "x".repeat(129);
        assert_eq!(check_new_password(&long, "a@b.co", &[]), Err(PasswordError::TooLong));
    }

    #[test]
    fn refuses_email_and_weak() {
        assert_eq!(check_new_password("Ana@Example.com", "ana@example.com", &[]), Err(PasswordError::EqualsEmail));
        assert!(matches!(check_new_password("password", "a@b.co", &[]), Err(PasswordError::Weak(_))));
        assert!(matches!(check_new_password("12345678", "a@b.co", &[]), Err(PasswordError::Weak(_))));
    }

    #[test]
    fn accepts_strong() {
        assert_eq!(check_new_password("correct horse battery staple", "a@b.co", &[]), Ok(()));
    }
}
