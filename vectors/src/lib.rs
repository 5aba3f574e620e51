//! Test vectors of the SGW as data files in the Wycheproof JSON shape, each group traced to
//! requirement IDs, and the serde types to read them. Filled by the data-security issue.
#![forbid(unsafe_code)]
