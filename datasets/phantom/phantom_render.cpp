// The phantom's image formation: projection of the posed vessel tree into each view and a
// subtraction-angiogram look (dark filled vessels, blur, residue, noise). See phantom.h.
//
// Physics, simplified: each pixel's darkness is exp(-mu * concentration * L), where L is the
// length (mm) of contrast-filled lumen the ray crosses: a cylinder's chord 2*sqrt(r^2 - d^2)
// for vessels, a sphere's for sacs, weighted by how strongly the view's injection fills them.
// Crossing vessels add up (they are darker where they overlap, as in real DSA); the pieces of
// one solid (a vessel's own segments, trunks that continue one another) are drawn as their
// union so that joints draw no spurious dark spots.
#include <algorithm>
#include <cmath>
#include <map>

#include <opencv2/imgproc.hpp>

#include "core/random.h"
#include "datasets/phantom/phantom.h"

namespace angiotrain {
namespace {

constexpr double kFieldOfViewMm = 170;    // image side at any resolution
constexpr double kSourceDistanceMm = 750;  // X-ray source to the head's centre: mild perspective
constexpr double kMuPerMm = 0.30;          // darkness per mm of filled lumen at concentration 1
// Below this projected radius (px) a cylinder's chord is poorly sampled by the pixel grid (a
// thin vessel would look beaded); such vessels are drawn as a Gaussian ridge of the same
// cross-section, and the same peak at the threshold.
constexpr double kThinPx = 1.2;
// Sacs whose parent is filled more faintly than this in a view are neither drawn nor listed.
constexpr double kMinSacOpacity = 0.15;
const Point3 kPivot{0, -10, 5};  // the head turns about here; the views are centred on it

double GaussianSigma(double r) { return std::max(0.6, 0.6267 * r); }  // 0.6267 = pi/(2*sqrt(2pi))

// Draws one capsule (a projected vessel segment tapering from ra to rb px) into `solid` as the
// maximum of what is there and chord * scale; grows `touched` to cover what it drew.
void DrawCapsule(cv::Mat& solid, double ax, double ay, double bx, double by, double ra, double rb, double scale,
                 cv::Rect& touched) {
  const int n = solid.cols;
  double rmax = std::max(ra, rb);
  double reach = rmax < kThinPx ? 3 * GaussianSigma(rmax) : rmax + 0.5;
  int x0 = std::max(0, static_cast<int>(std::floor(std::min(ax, bx) - reach)));
  int x1 = std::min(n - 1, static_cast<int>(std::ceil(std::max(ax, bx) + reach)));
  int y0 = std::max(0, static_cast<int>(std::floor(std::min(ay, by) - reach)));
  int y1 = std::min(n - 1, static_cast<int>(std::ceil(std::max(ay, by) + reach)));
  if (x0 > x1 || y0 > y1) return;
  cv::Rect box(x0, y0, x1 - x0 + 1, y1 - y0 + 1);
  touched = touched.area() ? (touched | box) : box;
  double dx = bx - ax, dy = by - ay, len2 = dx * dx + dy * dy;
  for (int y = y0; y <= y1; ++y) {
    float* row = solid.ptr<float>(y);
    double py = y - ay;
    for (int x = x0; x <= x1; ++x) {
      double px = x - ax;
      double s = len2 > 0 ? std::min(1.0, std::max(0.0, (px * dx + py * dy) / len2)) : 0.0;
      double ex = px - s * dx, ey = py - s * dy, d2 = ex * ex + ey * ey;
      double r = ra + s * (rb - ra);
      double chord;
      if (r >= kThinPx) {
        if (d2 >= r * r) continue;
        chord = 2 * std::sqrt(r * r - d2);
      } else {
        double sigma = GaussianSigma(r);
        if (d2 >= 9 * sigma * sigma) continue;
        chord = 3.141592653589793 * r * r / (2.5066282746310002 * sigma) * std::exp(-d2 / (2 * sigma * sigma));
      }
      float value = static_cast<float>(chord * scale);
      if (value > row[x]) row[x] = value;
    }
  }
}

// Adds a sphere of radius rad px at (cx, cy): chord * scale.
void AddSphere(cv::Mat& accum, double cx, double cy, double rad, double scale) {
  const int n = accum.cols;
  double sigma = GaussianSigma(rad);
  double reach = rad < kThinPx ? 3 * sigma : rad + 0.5;
  int x0 = std::max(0, static_cast<int>(std::floor(cx - reach))), x1 = std::min(n - 1, static_cast<int>(std::ceil(cx + reach)));
  int y0 = std::max(0, static_cast<int>(std::floor(cy - reach))), y1 = std::min(n - 1, static_cast<int>(std::ceil(cy + reach)));
  for (int y = y0; y <= y1; ++y) {
    float* row = accum.ptr<float>(y);
    for (int x = x0; x <= x1; ++x) {
      double d2 = (x - cx) * (x - cx) + (y - cy) * (y - cy);
      double chord;
      if (rad >= kThinPx) {
        if (d2 >= rad * rad) continue;
        chord = 2 * std::sqrt(rad * rad - d2);
      } else {  // same volume as the sphere
        chord = (4.0 / 3.0) * rad * rad * rad / (2 * sigma * sigma) * std::exp(-d2 / (2 * sigma * sigma));
      }
      row[x] += static_cast<float>(chord * scale);
    }
  }
}

// Sum over the view of the lumen length (mm) each ray crosses, weighted by filling.
cv::Mat LumenLength(const PhantomOptions& options, const PhantomPatient& patient, int view) {
  const int n = options.resolution;
  const int injection = view / 2;
  cv::Mat accum = cv::Mat::zeros(n, n, CV_32F);
  cv::Mat solid = cv::Mat::zeros(n, n, CV_32F);
  // Solids in a fixed order (group key, then vessel index): the float sums are reproducible.
  std::map<long, std::vector<size_t>> solids;
  for (size_t k = 0; k < patient.vessels.size(); ++k) {
    const PhantomVessel& v = patient.vessels[k];
    bool filled = v.fill[injection].opacity > 0;
    if (filled) solids[v.group >= 0 ? -1 - static_cast<long>(v.group) : static_cast<long>(k)].push_back(k);
  }
  std::vector<ViewPosition> at;
  for (const auto& entry : solids) {
    cv::Rect touched;
    for (size_t k : entry.second) {
      const PhantomVessel& v = patient.vessels[k];
      at.clear();
      for (const Point3& p : v.points) at.push_back(ProjectToView(options, patient, view, p));
      double start = v.hidden_start_mm, end = v.length() - v.hidden_end_mm;
      for (size_t i = 0; i + 1 < v.points.size(); ++i) {
        double a0 = v.arc_mm[i], a1 = v.arc_mm[i + 1];
        if (a1 <= start || a0 >= end || a1 <= a0) continue;
        double opacity = v.OpacityAt(injection, 0.5 * (a0 + a1) / v.length());
        if (opacity <= 0) continue;
        double f0 = std::max(0.0, (start - a0) / (a1 - a0)), f1 = std::min(1.0, (end - a0) / (a1 - a0));
        const ViewPosition &p = at[i], &q = at[i + 1];
        auto lerp = [](double u, double w, double f) { return u + f * (w - u); };
        double ppm0 = lerp(p.pixels_per_mm, q.pixels_per_mm, f0), ppm1 = lerp(p.pixels_per_mm, q.pixels_per_mm, f1);
        double ra = lerp(v.radius_mm[i], v.radius_mm[i + 1], f0) * ppm0;
        double rb = lerp(v.radius_mm[i], v.radius_mm[i + 1], f1) * ppm1;
        DrawCapsule(solid, lerp(p.x, q.x, f0), lerp(p.y, q.y, f0), lerp(p.x, q.x, f1), lerp(p.y, q.y, f1), ra, rb,
                    opacity * 2 / (ppm0 + ppm1), touched);
      }
    }
    if (touched.area() > 0) {
      accum(touched) += solid(touched);
      solid(touched).setTo(0);
    }
  }
  for (size_t a = 0; a < patient.aneurysms.size(); ++a) {
    for (const AneurysmInView& seen : AneurysmViews(options, patient, static_cast<int>(a))) {
      if (seen.view != view) continue;
      // Chord in px -> mm: divide by the pixels per mm at the sac's depth.
      double mm_per_px = patient.aneurysms[a].radius_mm / seen.radius_px;
      AddSphere(accum, seen.x, seen.y, seen.radius_px, seen.opacity * options.aneurysm_contrast * mm_per_px);
    }
  }
  return accum;
}

}  // namespace

ViewPosition ProjectToView(const PhantomOptions& options, const PhantomPatient& patient, int view,
                           const Point3& point) {
  const auto& m = patient.rotation;
  Point3 d{point.x - kPivot.x, point.y - kPivot.y, point.z - kPivot.z};
  const Point3& shift = patient.injection_shift[view / 2];
  Point3 q{m[0] * d.x + m[1] * d.y + m[2] * d.z + kPivot.x + patient.translation.x + shift.x,
           m[3] * d.x + m[4] * d.y + m[5] * d.z + kPivot.y + patient.translation.y + shift.y,
           m[6] * d.x + m[7] * d.y + m[8] * d.z + kPivot.z + patient.translation.z + shift.z};
  const double n = options.resolution;
  const double ppm = n / kFieldOfViewMm;
  ViewPosition out;
  // Pixel centres at integer coordinates (OpenCV's convention); the image centre is at (n-1)/2.
  const double centre = 0.5 * (n - 1);
  if (view % 2 == 0) {
    // A, frontal: the source behind the head (posteroanterior), the patient's left on the right.
    double magnification = kSourceDistanceMm / (kSourceDistanceMm + (q.y - kPivot.y));
    out.x = centre + magnification * (q.x - kPivot.x) * ppm;
    out.y = centre - magnification * (q.z - kPivot.z) * ppm;
    out.pixels_per_mm = magnification * ppm;
  } else {
    // B, lateral: the source at the patient's right, the face on the left.
    double magnification = kSourceDistanceMm / (kSourceDistanceMm + (q.x - kPivot.x));
    out.x = centre - magnification * (q.y - kPivot.y) * ppm;
    out.y = centre - magnification * (q.z - kPivot.z) * ppm;
    out.pixels_per_mm = magnification * ppm;
  }
  return out;
}

std::vector<AneurysmInView> AneurysmViews(const PhantomOptions& options, const PhantomPatient& patient,
                                          int aneurysm) {
  const PhantomAneurysm& a = patient.aneurysms.at(aneurysm);
  const PhantomVessel& parent = patient.vessels.at(a.vessel);
  std::vector<AneurysmInView> out;
  for (int view = 0; view < kNumViews; ++view) {
    double opacity = parent.OpacityAt(view / 2, a.t);
    if (opacity < kMinSacOpacity) continue;
    ViewPosition at = ProjectToView(options, patient, view, a.center);
    out.push_back({view, at.x, at.y, a.radius_mm * at.pixels_per_mm, opacity});
  }
  return out;
}

std::array<cv::Mat, kNumViews> RenderPhantomViews(const PhantomOptions& options, const PhantomPatient& patient) {
  const int n = options.resolution;
  const double ppm = n / kFieldOfViewMm;
  std::array<cv::Mat, kNumViews> out;
  for (int view = 0; view < kNumViews; ++view) {
    const PhantomViewConditions& c = patient.views[view];
    cv::Mat image;
    cv::Mat lumen = LumenLength(options, patient, view);
    cv::exp(lumen * (-kMuPerMm * c.concentration), image);
    // Background with low-frequency residue: sum of amplitude * cos(kx u + ky v + phase),
    // expanded as cos(a)cos(b) - sin(a)sin(b) so that each term is separable in u and v.
    cv::Mat field(n, n, CV_32F);
    std::vector<float> cx(3 * n), sx(3 * n), cy(3 * n), sy(3 * n);
    for (int k = 0; k < 3; ++k) {
      for (int i = 0; i < n; ++i) {
        double mm = (i - 0.5 * (n - 1)) / ppm;
        cx[k * n + i] = static_cast<float>(std::cos(c.residue_kx[k] * mm + c.residue_phase[k]));
        sx[k * n + i] = static_cast<float>(std::sin(c.residue_kx[k] * mm + c.residue_phase[k]));
        cy[k * n + i] = static_cast<float>(c.residue_amplitude[k] * std::cos(c.residue_ky[k] * mm));
        sy[k * n + i] = static_cast<float>(c.residue_amplitude[k] * std::sin(c.residue_ky[k] * mm));
      }
    }
    const float background = static_cast<float>(c.background);
    for (int y = 0; y < n; ++y) {
      float* row = field.ptr<float>(y);
      const float a0 = cy[y], b0 = sy[y], a1 = cy[n + y], b1 = sy[n + y], a2 = cy[2 * n + y], b2 = sy[2 * n + y];
      const float *c0 = &cx[0], *s0 = &sx[0], *c1 = &cx[n], *s1 = &sx[n], *c2 = &cx[2 * n], *s2 = &sx[2 * n];
      for (int x = 0; x < n; ++x)
        row[x] = background + (a0 * c0[x] - b0 * s0[x]) + (a1 * c1[x] - b1 * s1[x]) + (a2 * c2[x] - b2 * s2[x]);
    }
    image = image.mul(field);
    double blur_px = c.blur_mm * ppm;
    if (blur_px >= 0.2) cv::GaussianBlur(image, image, cv::Size(0, 0), blur_px, blur_px, cv::BORDER_REFLECT);
    // Detector noise: a sum of four 16-bit uniforms per pixel (Irwin-Hall, variance 1/3),
    // rescaled to unit variance. The bits are a hash of (seed, pixel): fast, and the same on
    // every platform.
    cv::Mat grey(n, n, CV_8U);
    const float noise_scale = static_cast<float>(c.noise * 1.7320508075688772);
    for (int y = 0; y < n; ++y) {
      const float* src = image.ptr<float>(y);
      uint8_t* dst = grey.ptr<uint8_t>(y);
      const uint64_t row_base = static_cast<uint64_t>(y) * n;
      for (int x = 0; x < n; ++x) {
        uint64_t b = MixSeed(c.noise_seed, row_base + x);
        uint32_t u = static_cast<uint32_t>((b & 0xFFFF) + ((b >> 16) & 0xFFFF) + ((b >> 32) & 0xFFFF) + (b >> 48));
        float g = static_cast<float>(u) * (1.0f / 65536.0f) - 2.0f;
        float value = std::floor(255.0f * src[x] + noise_scale * g + 0.5f);
        dst[x] = static_cast<uint8_t>(std::min(255.0f, std::max(0.0f, value)));
      }
    }
    out[view] = grey;
  }
  return out;
}

}  // namespace angiotrain
