//! See the binaries: `mart-native-ref` (the native reference server) and
//! `mart-overhead` (in-process cost of one request through the host).
