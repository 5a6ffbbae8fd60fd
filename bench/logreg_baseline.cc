// Logistic-regression baseline with mean imputation on a prepared dataset: trains on the
// training split (L2 picked on validation AUC), reports validation/test metrics.
//
// Features: every modality's features concatenated (a missing modality is zeros, which is
// mean imputation after the training-split standard scaling done by `prepare`) plus one
// 0/1 "observed" indicator per modality, and an unpenalised intercept. The loss is the
// class-weighted mean cross-entropy (normalised by the sum of the weights) plus
// (l2 / 2) * ||W||^2. Binary problems (K == 2) use one logit and damped Newton steps;
// K > 2 uses a softmax and L-BFGS. Zero initialisation, single-threaded, deterministic.
//
// Usage: logreg_baseline --data DIR [--l2 X] [--epochs N] [--class-weights w0,w1,...]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <iostream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "cluster/base/error.h"
#include "data_loader/decoded_dataset.h"
#include "data_loader/shard.h"
#include "trainer/metrics.h"

namespace flexmoe {
namespace {

constexpr double kL2Grid[] = {1e-4, 1e-3, 1e-2, 1e-1, 1};
constexpr double kGradTolerance = 1e-6;  // on the Euclidean norm of the full gradient

struct Options {
  std::string data;
  double l2 = -1;  // < 0: chosen on the validation split
  int epochs = 200;
  std::vector<double> class_weights;
};

// One split as a dense design matrix (without the intercept column).
struct Split {
  int n = 0;
  int d = 0;
  std::vector<double> x;  // row-major [n, d]
  std::vector<int> label;
  std::vector<int> combination;
};

// Parameters: for K == 2 one row [d + 1] (weights, then intercept); for K > 2, K such rows.
struct Model {
  int num_classes = 0;
  int d = 0;
  std::vector<double> theta;
  int rows() const { return num_classes == 2 ? 1 : num_classes; }
};

struct FitResult {
  Model model;
  double loss = 0;
  double grad_norm = 0;
  int iterations = 0;
  bool converged = false;
};

double ParseDouble(const std::string& flag, const std::string& text) {
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || !std::isfinite(value)) {
    Fail(ErrorCode::kInvalidArgument, flag, ": '", text, "' is not a number");
  }
  return value;
}

Options ParseOptions(int argc, char** argv) {
  Options options;
  const char* usage =
      "usage: logreg_baseline --data DIR [--l2 X] [--epochs N] [--class-weights w0,w1,...]";
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::cout << usage << "\n";
      std::exit(0);
    }
    if (i + 1 >= argc) Fail(ErrorCode::kInvalidArgument, flag, " needs a value\n", usage);
    std::string value = argv[++i];
    if (flag == "--data") {
      options.data = value;
    } else if (flag == "--l2") {
      options.l2 = ParseDouble(flag, value);
      if (options.l2 < 0) Fail(ErrorCode::kInvalidArgument, "--l2 must be >= 0");
    } else if (flag == "--epochs") {
      double epochs = ParseDouble(flag, value);
      if (epochs < 1 || epochs != std::floor(epochs) || epochs > 1e7) {
        Fail(ErrorCode::kInvalidArgument, "--epochs must be a positive integer");
      }
      options.epochs = static_cast<int>(epochs);
    } else if (flag == "--class-weights") {
      std::stringstream in(value);
      std::string part;
      while (std::getline(in, part, ',')) {
        double w = ParseDouble(flag, part);
        if (w <= 0) Fail(ErrorCode::kInvalidArgument, "--class-weights must be positive");
        options.class_weights.push_back(w);
      }
    } else {
      Fail(ErrorCode::kInvalidArgument, "unknown flag '", flag, "'\n", usage);
    }
  }
  if (options.data.empty()) Fail(ErrorCode::kInvalidArgument, "--data is required\n", usage);
  return options;
}

// Builds the design matrices of the three splits.
std::vector<Split> BuildSplits(const PreparedDataset& dataset, const DecodedDataset& decoded) {
  std::vector<std::vector<uint32_t>> members(3);
  for (size_t i = 0; i < dataset.size(); ++i) {
    uint32_t split = dataset.index.split(static_cast<int>(i));
    if (split > 2) Fail(ErrorCode::kInvalidArgument, "sample ", i, " has split ", split);
    members[split].push_back(static_cast<uint32_t>(i));
  }
  const int m_count = decoded.num_modalities();
  int d = m_count;
  for (int size : decoded.feature_sizes()) d += size;
  std::vector<Split> splits(3);
  for (int s = 0; s < 3; ++s) {
    DecodedBatch batch = decoded.Gather(members[s]);
    Split& split = splits[s];
    split.n = batch.size;
    split.d = d;
    split.x.resize(static_cast<size_t>(split.n) * d);
    for (int i = 0; i < split.n; ++i) {
      double* row = &split.x[static_cast<size_t>(i) * d];
      for (int m = 0; m < m_count; ++m) {
        const int f = decoded.feature_sizes()[m];
        const float* src = &batch.features[m][static_cast<size_t>(i) * f];
        for (int j = 0; j < f; ++j) *row++ = src[j];
      }
      for (int m = 0; m < m_count; ++m)
        *row++ = batch.observed[static_cast<size_t>(i) * m_count + m];
      split.label.push_back(static_cast<int>(batch.label[i]));
      split.combination.push_back(static_cast<int>(batch.combination[i]));
    }
  }
  return splits;
}

// Row-major [n, K] class probabilities.
std::vector<double> Probabilities(const Model& model, const Split& split) {
  const int k = model.num_classes;
  const int d = model.d;
  std::vector<double> probs(static_cast<size_t>(split.n) * k);
  std::vector<double> z(model.rows());
  for (int i = 0; i < split.n; ++i) {
    const double* x = &split.x[static_cast<size_t>(i) * d];
    for (int r = 0; r < model.rows(); ++r) {
      const double* w = &model.theta[static_cast<size_t>(r) * (d + 1)];
      double sum = w[d];
      for (int j = 0; j < d; ++j) sum += w[j] * x[j];
      z[r] = sum;
    }
    double* p = &probs[static_cast<size_t>(i) * k];
    if (k == 2) {
      p[1] = 1 / (1 + std::exp(-z[0]));
      p[0] = 1 - p[1];
    } else {
      double top = *std::max_element(z.begin(), z.end());
      double total = 0;
      for (int c = 0; c < k; ++c) total += p[c] = std::exp(z[c] - top);
      for (int c = 0; c < k; ++c) p[c] /= total;
    }
  }
  return probs;
}

// The regularised, weighted loss at `theta`; fills `grad` when it is not null.
class Objective {
 public:
  Objective(const Split& train, int num_classes, double l2, const std::vector<double>& weights)
      : train_(train), k_(num_classes), l2_(l2), weights_(weights) {
    total_weight_ = 0;
    for (int label : train.label) total_weight_ += weights_[label];
  }

  int size() const { return (k_ == 2 ? 1 : k_) * (train_.d + 1); }

  double Evaluate(const std::vector<double>& theta, std::vector<double>* grad) const {
    const int d = train_.d;
    const int rows = k_ == 2 ? 1 : k_;
    if (grad) grad->assign(theta.size(), 0.0);
    std::vector<double> z(rows), p(rows);
    double loss = 0;
    for (int i = 0; i < train_.n; ++i) {
      const double* x = &train_.x[static_cast<size_t>(i) * d];
      const int y = train_.label[i];
      const double w_i = weights_[y] / total_weight_;
      for (int r = 0; r < rows; ++r) {
        const double* w = &theta[static_cast<size_t>(r) * (d + 1)];
        double sum = w[d];
        for (int j = 0; j < d; ++j) sum += w[j] * x[j];
        z[r] = sum;
      }
      if (k_ == 2) {
        // -log sigmoid(s * z) with s = +-1, computed stably.
        const double s = y == 1 ? z[0] : -z[0];
        loss += w_i * (s > 0 ? std::log1p(std::exp(-s)) : -s + std::log1p(std::exp(s)));
        p[0] = (1 / (1 + std::exp(-z[0]))) - (y == 1 ? 1.0 : 0.0);  // dloss/dz
      } else {
        double top = *std::max_element(z.begin(), z.end());
        double total = 0;
        for (int c = 0; c < rows; ++c) total += p[c] = std::exp(z[c] - top);
        loss += w_i * (std::log(total) + top - z[y]);
        for (int c = 0; c < rows; ++c) p[c] = p[c] / total - (c == y ? 1.0 : 0.0);
      }
      if (!grad) continue;
      for (int r = 0; r < rows; ++r) {
        double* g = &(*grad)[static_cast<size_t>(r) * (d + 1)];
        const double coef = w_i * p[r];
        for (int j = 0; j < d; ++j) g[j] += coef * x[j];
        g[d] += coef;
      }
    }
    for (int r = 0; r < rows; ++r) {
      for (int j = 0; j < d; ++j) {
        const size_t at = static_cast<size_t>(r) * (d + 1) + j;
        loss += 0.5 * l2_ * theta[at] * theta[at];
        if (grad) (*grad)[at] += l2_ * theta[at];
      }
    }
    return loss;
  }

  // Binary case only: the Hessian [(d + 1), (d + 1)] at `theta`, row-major.
  std::vector<double> Hessian(const std::vector<double>& theta) const {
    const int d = train_.d;
    const int n1 = d + 1;
    std::vector<double> h(static_cast<size_t>(n1) * n1, 0.0);
    std::vector<double> xa(n1);
    for (int i = 0; i < train_.n; ++i) {
      const double* x = &train_.x[static_cast<size_t>(i) * d];
      double z = theta[d];
      for (int j = 0; j < d; ++j) z += theta[j] * x[j];
      const double p = 1 / (1 + std::exp(-z));
      const double c = weights_[train_.label[i]] / total_weight_ * p * (1 - p);
      std::copy(x, x + d, xa.begin());
      xa[d] = 1;
      for (int a = 0; a < n1; ++a) {
        const double ca = c * xa[a];
        if (ca == 0) continue;
        double* row = &h[static_cast<size_t>(a) * n1];
        for (int b = 0; b <= a; ++b) row[b] += ca * xa[b];
      }
    }
    for (int a = 0; a < n1; ++a) {
      for (int b = 0; b < a; ++b)
        h[static_cast<size_t>(b) * n1 + a] = h[static_cast<size_t>(a) * n1 + b];
      if (a < d) h[static_cast<size_t>(a) * n1 + a] += l2_;
    }
    return h;
  }

 private:
  const Split& train_;
  int k_;
  double l2_;
  std::vector<double> weights_;
  double total_weight_ = 0;
};

double Norm(const std::vector<double>& v) {
  double sum = 0;
  for (double x : v) sum += x * x;
  return std::sqrt(sum);
}

double Dot(const std::vector<double>& a, const std::vector<double>& b) {
  double sum = 0;
  for (size_t i = 0; i < a.size(); ++i) sum += a[i] * b[i];
  return sum;
}

// Solves h * x = b for symmetric positive definite h by Cholesky; a small ridge is added
// when the factorisation breaks down (e.g. l2 = 0 with separable data).
std::vector<double> SolveSpd(std::vector<double> h, std::vector<double> b) {
  const int n = static_cast<int>(b.size());
  const std::vector<double> original = h;
  for (double ridge = 0;; ridge = ridge == 0 ? 1e-10 : ridge * 10) {
    h = original;
    for (int i = 0; i < n; ++i) h[static_cast<size_t>(i) * n + i] += ridge;
    bool ok = true;
    for (int j = 0; j < n && ok; ++j) {
      double* rj = &h[static_cast<size_t>(j) * n];
      double diag = rj[j];
      for (int k = 0; k < j; ++k) diag -= rj[k] * rj[k];
      if (!(diag > 0)) {
        ok = false;
        break;
      }
      rj[j] = std::sqrt(diag);
      for (int i = j + 1; i < n; ++i) {
        double* ri = &h[static_cast<size_t>(i) * n];
        double sum = ri[j];
        for (int k = 0; k < j; ++k) sum -= ri[k] * rj[k];
        ri[j] = sum / rj[j];
      }
    }
    if (!ok) {
      if (ridge > 1) Fail(ErrorCode::kInternal, "Newton system is not positive definite");
      continue;
    }
    for (int i = 0; i < n; ++i) {  // L y = b
      double sum = b[i];
      for (int k = 0; k < i; ++k) sum -= h[static_cast<size_t>(i) * n + k] * b[k];
      b[i] = sum / h[static_cast<size_t>(i) * n + i];
    }
    for (int i = n - 1; i >= 0; --i) {  // L^T x = y
      double sum = b[i];
      for (int k = i + 1; k < n; ++k) sum -= h[static_cast<size_t>(k) * n + i] * b[k];
      b[i] = sum / h[static_cast<size_t>(i) * n + i];
    }
    return b;
  }
}

// Backtracking (Armijo) line search along `dir` from `theta`; returns the accepted step's
// loss and updates theta and grad. Returns false when no decrease was found.
bool LineSearch(const Objective& objective, double loss, const std::vector<double>& dir,
                std::vector<double>* theta, std::vector<double>* grad, double* new_loss) {
  const double slope = Dot(*grad, dir);
  if (!(slope < 0)) return false;
  std::vector<double> trial(theta->size()), trial_grad;
  for (double step = 1; step > 1e-12; step *= 0.5) {
    for (size_t i = 0; i < trial.size(); ++i) trial[i] = (*theta)[i] + step * dir[i];
    double value = objective.Evaluate(trial, &trial_grad);
    if (std::isfinite(value) && value <= loss + 1e-4 * step * slope) {
      *theta = trial;
      *grad = trial_grad;
      *new_loss = value;
      return true;
    }
  }
  return false;
}

FitResult Fit(const Split& train, int num_classes, double l2, const std::vector<double>& weights,
              int max_iterations) {
  Objective objective(train, num_classes, l2, weights);
  FitResult result;
  result.model.num_classes = num_classes;
  result.model.d = train.d;
  std::vector<double>& theta = result.model.theta;
  theta.assign(objective.size(), 0.0);
  std::vector<double> grad;
  double loss = objective.Evaluate(theta, &grad);
  // L-BFGS memory (K > 2).
  std::deque<std::vector<double>> s_hist, y_hist;
  constexpr size_t kMemory = 10;
  int it = 0;
  for (; it < max_iterations && Norm(grad) > kGradTolerance; ++it) {
    std::vector<double> dir(theta.size());
    if (num_classes == 2) {
      std::vector<double> neg(grad.size());
      for (size_t i = 0; i < grad.size(); ++i) neg[i] = -grad[i];
      dir = SolveSpd(objective.Hessian(theta), neg);
    } else {
      // Two-loop recursion.
      std::vector<double> q = grad;
      std::vector<double> alpha(s_hist.size());
      for (int h = static_cast<int>(s_hist.size()) - 1; h >= 0; --h) {
        alpha[h] = Dot(s_hist[h], q) / Dot(y_hist[h], s_hist[h]);
        for (size_t i = 0; i < q.size(); ++i) q[i] -= alpha[h] * y_hist[h][i];
      }
      double gamma = s_hist.empty()
                         ? 1.0 / std::max(1.0, Norm(grad))
                         : Dot(s_hist.back(), y_hist.back()) / Dot(y_hist.back(), y_hist.back());
      for (double& v : q) v *= gamma;
      for (size_t h = 0; h < s_hist.size(); ++h) {
        double beta = Dot(y_hist[h], q) / Dot(y_hist[h], s_hist[h]);
        for (size_t i = 0; i < q.size(); ++i) q[i] += s_hist[h][i] * (alpha[h] - beta);
      }
      for (size_t i = 0; i < q.size(); ++i) dir[i] = -q[i];
    }
    std::vector<double> old_theta = theta, old_grad = grad;
    double new_loss = loss;
    if (!LineSearch(objective, loss, dir, &theta, &grad, &new_loss)) {
      if (s_hist.empty()) break;  // no progress even along a gradient-like direction
      s_hist.clear();             // restart L-BFGS from steepest descent
      y_hist.clear();
      continue;
    }
    loss = new_loss;
    if (num_classes != 2) {
      std::vector<double> s(theta.size()), y(theta.size());
      for (size_t i = 0; i < s.size(); ++i) {
        s[i] = theta[i] - old_theta[i];
        y[i] = grad[i] - old_grad[i];
      }
      if (Dot(s, y) > 1e-12) {
        s_hist.push_back(std::move(s));
        y_hist.push_back(std::move(y));
        if (s_hist.size() > kMemory) {
          s_hist.pop_front();
          y_hist.pop_front();
        }
      }
    }
  }
  result.loss = loss;
  result.grad_norm = Norm(grad);
  result.iterations = it;
  result.converged = result.grad_norm <= kGradTolerance;
  return result;
}

std::vector<float> ToFloat(const std::vector<double>& v) { return {v.begin(), v.end()}; }

ClassificationMetrics Evaluate(const Model& model, const Split& split) {
  return ComputeMetrics(split.label, ToFloat(Probabilities(model, split)), model.num_classes);
}

void PrintMetrics(const char* name, const ClassificationMetrics& m) {
  std::printf("%-10s n=%-5lld ACC %6.2f  F1 %6.2f  AUC %6.2f\n", name,
              static_cast<long long>(m.count), 100 * m.accuracy, 100 * m.macro_f1, 100 * m.auc);
}

// JSON has no NaN: undefined metrics are written as null.
std::string JsonNumber(double value) {
  if (!std::isfinite(value)) return "null";
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%.6g", value);
  return buffer;
}

int Run(const Options& options) {
  const auto start = std::chrono::steady_clock::now();
  PreparedDataset dataset = PreparedDataset::Open(options.data);
  DecodedDataset decoded(dataset);
  const int k = dataset.meta.num_classes();
  if (k < 2) Fail(ErrorCode::kInvalidArgument, options.data, ": num_classes is ", k);
  std::vector<double> weights = options.class_weights;
  if (weights.empty()) weights.assign(k, 1.0);
  if (static_cast<int>(weights.size()) != k) {
    Fail(ErrorCode::kInvalidArgument, "--class-weights has ", weights.size(), " values for ", k,
         " classes");
  }
  std::vector<Split> splits = BuildSplits(dataset, decoded);
  const Split& train = splits[0];
  const Split& valid = splits[1];
  const Split& test = splits[2];
  if (train.n == 0) Fail(ErrorCode::kInvalidArgument, options.data, ": no training samples");
  for (const Split& split : splits) {
    for (int label : split.label) {
      if (label < 0 || label >= k)
        Fail(ErrorCode::kInvalidArgument, "label ", label, " out of range");
    }
  }

  std::printf("logreg_baseline: %s\n", options.data.c_str());
  std::printf("samples: train %d, validation %d, test %d; classes %d\n", train.n, valid.n, test.n,
              k);
  std::printf("features: %d = ", train.d);
  for (int m = 0; m < decoded.num_modalities(); ++m) {
    std::printf("%s%s %d", m ? " + " : "", dataset.meta.modalities(m).name().c_str(),
                decoded.feature_sizes()[m]);
  }
  std::printf(" + %d observed indicators (one 0/1 per modality) + intercept\n",
              decoded.num_modalities());
  std::printf("imputation: missing modality -> 0 = training mean after standard scaling\n");
  std::printf("optimizer: %s, max %d iterations, zero init; class weights",
              k == 2 ? "damped Newton (binary logistic)" : "L-BFGS (softmax)", options.epochs);
  for (double w : weights) std::printf(" %g", w);
  std::printf("\n");

  FitResult best;
  double best_l2 = options.l2;
  if (options.l2 >= 0) {
    best = Fit(train, k, options.l2, weights, options.epochs);
  } else {
    if (valid.n == 0) Fail(ErrorCode::kInvalidArgument, "no validation samples to choose --l2");
    std::printf("\nL2 selection on validation AUC:\n");
    std::printf("%8s %10s %10s %5s %9s %8s %8s\n", "l2", "loss", "|grad|", "iter", "converged",
                "val ACC", "val AUC");
    double best_auc = -1;
    for (double l2 : kL2Grid) {
      FitResult fit = Fit(train, k, l2, weights, options.epochs);
      ClassificationMetrics m = Evaluate(fit.model, valid);
      std::printf("%8g %10.6f %10.3e %5d %9s %8.2f %8.2f\n", l2, fit.loss, fit.grad_norm,
                  fit.iterations, fit.converged ? "yes" : "NO", 100 * m.accuracy, 100 * m.auc);
      const double auc = std::isfinite(m.auc) ? m.auc : -std::numeric_limits<double>::infinity();
      if (best_auc == -1 || auc > best_auc) {
        best_auc = auc;
        best_l2 = l2;
        best = fit;
      }
    }
  }
  std::printf(
      "\nchosen l2 %g: final training loss %.8f, gradient norm %.3e after %d iterations (%s)\n",
      best_l2, best.loss, best.grad_norm, best.iterations,
      best.converged ? "converged" : "NOT converged");

  ClassificationMetrics train_m = Evaluate(best.model, train);
  ClassificationMetrics valid_m = Evaluate(best.model, valid);
  std::vector<float> test_probs = ToFloat(Probabilities(best.model, test));
  // Per-combination table over the combinations present in the test split.
  const auto& summary = dataset.meta.summary();
  std::vector<int> group_of(summary.combination_names_size(), -1);
  std::vector<std::string> names;
  std::vector<int> groups;
  for (int c : test.combination) {
    if (c < 0 || c >= static_cast<int>(group_of.size())) {
      Fail(ErrorCode::kInvalidArgument, "combination ", c, " has no name in the metadata");
    }
  }
  for (int c = 0; c < static_cast<int>(group_of.size()); ++c) {
    if (std::find(test.combination.begin(), test.combination.end(), c) != test.combination.end()) {
      group_of[c] = static_cast<int>(names.size());
      names.push_back(summary.combination_names(c));
    }
  }
  for (int c : test.combination) groups.push_back(group_of[c]);
  GroupedMetrics grouped =
      ComputeGroupedMetrics(test.label, test_probs, k, groups, static_cast<int>(names.size()));

  std::printf("\n");
  PrintMetrics("train", train_m);
  PrintMetrics("validation", valid_m);
  PrintMetrics("test", grouped.overall);
  std::printf("\ntest split per modality combination (percent):\n%s",
              FormatGroupTable(grouped, names).c_str());
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("time %.2f s\n", seconds);
  std::printf(
      "{\"bench\":\"logreg_baseline\", \"test_auc\":%s, \"test_acc\":%s, \"test_f1\":%s, "
      "\"l2\":%s}\n",
      JsonNumber(grouped.overall.auc).c_str(), JsonNumber(grouped.overall.accuracy).c_str(),
      JsonNumber(grouped.overall.macro_f1).c_str(), JsonNumber(best_l2).c_str());
  return 0;
}

}  // namespace
}  // namespace flexmoe

int main(int argc, char** argv) {
  try {
    return flexmoe::Run(flexmoe::ParseOptions(argc, argv));
  } catch (const flexmoe::Error& error) {
    std::cerr << "logreg_baseline: " << flexmoe::ErrorCodeName(error.code()) << ": " << error.what()
              << "\n";
    return flexmoe::ExitStatusFor(error.code());
  }
}
