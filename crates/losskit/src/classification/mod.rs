//! Classification losses (and `log_softmax`, their building block).
