//! The command line over a fake handle: arguments become the typed requests they should, and answers
//! are rendered with data on stdout and hints apart.
