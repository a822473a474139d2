//! Scoring a classifier's logits: loss, top-1 and top-5, per-class accuracy, the most confused
//! class pairs, and softmax top-k for predictions. Plain Rust, below both pretraining and transfer
//! (which re-exports it as `transfer::eval`).

use serde::{Deserialize, Serialize};

/// Rank of `label` in `row`: entries strictly greater, plus equal ones before it (a stable order,
/// so ties never count in a class's favour). A NaN logit ranks last: a diverged model never
/// scores a hit.
pub fn rank(row: &[f32], label: usize) -> usize {
    let target = row[label];
    if target.is_nan() {
        return usize::MAX;
    }
    row.iter()
        .enumerate()
        .filter(|&(i, &v)| v > target || (v == target && i < label))
        .count()
}

/// Summed cross-entropy loss, top-1 hits and top-5 hits of `logits` (`[n][classes]`).
pub fn score(logits: &[f32], classes: usize, labels: &[usize]) -> (f64, u64, u64) {
    let mut loss = 0.0f64;
    let (mut top1, mut top5) = (0u64, 0u64);
    for (row, &label) in logits.chunks_exact(classes).zip(labels) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
        loss += max + sum.ln() - row[label] as f64;
        let r = rank(row, label);
        top1 += (r == 0) as u64;
        top5 += (r < 5) as u64;
    }
    (loss, top1, top5)
}

/// Accuracy on one class.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassAccuracy {
    /// Class name.
    pub class: String,
    /// Images of this class.
    pub images: usize,
    /// Of those, predicted correctly (top-1).
    pub correct: usize,
    /// `correct / images` (0 for a class without images).
    pub accuracy: f64,
}

/// Images of `truth` predicted as `predicted`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Confusion {
    /// The true class.
    pub truth: String,
    /// The class predicted instead.
    pub predicted: String,
    /// Images.
    pub count: usize,
}

/// A classifier's scores on one split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Images scored.
    pub images: usize,
    /// Mean cross-entropy (natural log).
    pub loss: f64,
    /// Fraction of images whose label ranks first.
    pub top1: f64,
    /// Fraction of images whose label ranks in the top five.
    pub top5: f64,
    /// Mean of the per-class accuracies (classes with images only).
    pub mean_class_accuracy: f64,
    /// Accuracy per class, in label order.
    pub per_class: Vec<ClassAccuracy>,
    /// The most frequent (truth, prediction) mistakes, most frequent first.
    pub confusions: Vec<Confusion>,
}

/// Scores `logits` (`[n][classes]`) against `labels`, keeping the `confusions` most frequent
/// mistakes.
pub fn evaluate(
    logits: &[f32],
    labels: &[usize],
    classes: &[String],
    confusions: usize,
) -> Evaluation {
    let c = classes.len();
    let n = labels.len();
    let (loss, top1, top5) = score(logits, c, labels);
    let mut images = vec![0usize; c];
    let mut correct = vec![0usize; c];
    let mut mistakes = std::collections::HashMap::<(usize, usize), usize>::new();
    for (row, &label) in logits.chunks_exact(c).zip(labels) {
        let pred = (0..c).find(|&i| rank(row, i) == 0).unwrap_or(0);
        images[label] += 1;
        if pred == label {
            correct[label] += 1;
        } else {
            *mistakes.entry((label, pred)).or_default() += 1;
        }
    }
    let per_class: Vec<ClassAccuracy> = (0..c)
        .map(|i| ClassAccuracy {
            class: classes[i].clone(),
            images: images[i],
            correct: correct[i],
            accuracy: correct[i] as f64 / images[i].max(1) as f64,
        })
        .collect();
    let seen: Vec<&ClassAccuracy> = per_class.iter().filter(|a| a.images > 0).collect();
    let mean_class_accuracy =
        seen.iter().map(|a| a.accuracy).sum::<f64>() / seen.len().max(1) as f64;
    let mut pairs: Vec<((usize, usize), usize)> = mistakes.into_iter().collect();
    pairs.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let nf = n.max(1) as f64;
    Evaluation {
        images: n,
        loss: loss / nf,
        top1: top1 as f64 / nf,
        top5: top5 as f64 / nf,
        mean_class_accuracy,
        per_class,
        confusions: pairs
            .into_iter()
            .take(confusions)
            .map(|((t, p), count)| Confusion {
                truth: classes[t].clone(),
                predicted: classes[p].clone(),
                count,
            })
            .collect(),
    }
}

/// The `k` most probable classes of one row of logits, with softmax probabilities.
///
/// ```
/// let top = bnn_transfer::eval::top_k(&[0.0, 2.0, 1.0], 2);
/// assert_eq!(top.iter().map(|t| t.0).collect::<Vec<_>>(), vec![1, 2]);
/// assert!((top[0].1 - 0.665).abs() < 1e-3); // e² / (1 + e + e²)
/// ```
pub fn top_k(row: &[f32], k: usize) -> Vec<(usize, f32)> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f64> = row.iter().map(|&v| ((v - max) as f64).exp()).collect();
    let sum: f64 = exp.iter().sum();
    let mut order: Vec<usize> = (0..row.len()).collect();
    order.sort_by_key(|&i| rank(row, i));
    order
        .into_iter()
        .take(k)
        .map(|i| (i, (exp[i] / sum) as f32))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_and_confusions() {
        let classes: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        // Rows: predicts a, b, b, c (tie b/c → b, the earlier one).
        let logits = [3., 1., 0., 0., 2., 1., 1., 5., 0., 0., 1., 1.];
        let labels = [0, 1, 2, 2];
        let e = evaluate(&logits, &labels, &classes, 5);
        assert_eq!(e.top1, 0.5);
        assert_eq!(e.top5, 1.0);
        assert_eq!(e.per_class[2].correct, 0);
        assert_eq!(e.per_class[2].images, 2);
        assert_eq!(e.mean_class_accuracy, 2.0 / 3.0);
        assert_eq!(
            e.confusions,
            vec![Confusion {
                truth: "c".into(),
                predicted: "b".into(),
                count: 2
            }]
        );
        let t = top_k(&logits[0..3], 2);
        assert_eq!(t[0].0, 0);
        assert_eq!(t[1].0, 1);
        assert!((t.iter().map(|p| p.1).sum::<f32>() - 0.9579).abs() < 1e-3);
    }

    #[test]
    fn nan_logits_never_score() {
        let (_, top1, top5) = score(&[f32::NAN; 6], 3, &[0, 2]);
        assert_eq!((top1, top5), (0, 0));
        assert_eq!(rank(&[1.0, f32::NAN], 1), usize::MAX);
    }
}
