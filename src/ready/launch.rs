//! The launcher (std): written next.
