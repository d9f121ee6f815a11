//! Margin (hinge-type) losses.
//!
//! | id | reference | per element | default reduction |
//! |---|---|---|---|
//! | [`margin_ranking`](fn@margin_ranking) | `torch.nn.functional.margin_ranking_loss` | `max(0, -y (x1 - x2) + margin)` | mean |

pub mod margin_ranking;

pub use margin_ranking::{margin_ranking, margin_ranking_grad, MarginRankingOptions};
