//! Data security (GW §4): signatures, encryption, masking and certificate checks for every
//! format, behind one interface (SEC-*). Filled by the data-security issue.
pub mod xml;
