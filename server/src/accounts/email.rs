//! Sign-in links by email, sent over SMTP with `lettre`.

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// Why a sign-in mail was not sent. The text is shown to the person asking.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("the server's email settings are not valid: {0}")]
    Misconfigured(String),
    #[error("the mail server did not take the message; try again in a few minutes")]
    NotSent(String),
}

/// Sends sign-in mail.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer").field("from", &self.from.to_string()).finish_non_exhaustive()
    }
}

impl Mailer {
    /// A mailer for `smtp_url` (see `accounts.smtp_url`), sending as `from`.
    pub fn new(smtp_url: &str, from: &str) -> Result<Self, MailError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(smtp_url)
            .map_err(|err| MailError::Misconfigured(format!("smtp_url: {err}")))?
            .timeout(Some(Duration::from_secs(15)))
            .build();
        let from = from.parse().map_err(|err| MailError::Misconfigured(format!("smtp_from: {err}")))?;
        Ok(Self { transport, from })
    }

    /// Sends `link` to `to`.
    pub async fn send_link(&self, to: &str, link: &str, minutes: u64) -> Result<(), MailError> {
        let to: Mailbox = to.parse().map_err(|err| MailError::NotSent(format!("{err}")))?;
        let body = format!(
            "Hello,\n\nSomeone (we hope you) asked to sign in to Caucus with this address.\n\
             Open this link to sign in. It works once, for the next {minutes} minutes:\n\n{link}\n\n\
             If you did not ask for it, you can ignore this message: nobody can sign in without the link.\n"
        );
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject("Your Caucus sign-in link")
            .body(body)
            .map_err(|err| MailError::NotSent(err.to_string()))?;
        self.transport.send(message).await.map_err(|err| MailError::NotSent(err.to_string()))?;
        Ok(())
    }
}
