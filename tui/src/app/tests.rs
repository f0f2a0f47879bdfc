//! Unit tests of App::handle and App::update with a fake node.
