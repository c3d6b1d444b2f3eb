//! The domain: units, administrators, tokens, sessions and login records, with their rules.
//! Nothing here does I/O; storage and the service layer enforce these rules through it.

pub mod account;
pub mod admin;
pub mod login;
pub mod month;
pub mod token;
pub mod unit;

pub use admin::{Administrator, Mobile, NewAdministrator};
pub use login::{LoginKind, LoginOutcome, LoginRecord, LoginWrite, NewSession, Session};
pub use month::Month;
pub use token::{
    NewToken, Token, TokenChange, TokenEvent, TokenEventKind, TokenState, TokenStatus,
    TransitionError,
};
pub use unit::{NewUnit, Unit, UnitKind};
