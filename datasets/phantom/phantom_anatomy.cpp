// The phantom's patients: a randomised 3-D cerebral arterial tree, head pose, per-view
// acquisition conditions and aneurysms. See phantom.h.
//
// The anatomy is a template (control points in mm, for the left side; the right side mirrors
// x) jittered per patient, joined by centripetal Catmull-Rom splines, plus randomly grown
// distal branches. Four independent random streams per patient (anatomy, pose, aneurysms,
// acquisition), each seeded from (seed, index, stream), so that a patient does not depend on
// the others, on the thread that made it, or on whether it has an aneurysm: the same patient
// without its aneurysms is the same image without the sacs.
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/random.h"
#include "datasets/phantom/phantom.h"
#include "datasets/phantom/phantom_random.h"

namespace angiotrain {
namespace {

constexpr double kPi = 3.141592653589793;

Point3 operator+(Point3 a, Point3 b) { return {a.x + b.x, a.y + b.y, a.z + b.z}; }
Point3 operator-(Point3 a, Point3 b) { return {a.x - b.x, a.y - b.y, a.z - b.z}; }
Point3 operator*(double s, Point3 a) { return {s * a.x, s * a.y, s * a.z}; }
double Dot(Point3 a, Point3 b) { return a.x * b.x + a.y * b.y + a.z * b.z; }
Point3 Cross(Point3 a, Point3 b) { return {a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x}; }
double Norm(Point3 a) { return std::sqrt(Dot(a, a)); }
Point3 Normalized(Point3 a) {
  double n = Norm(a);
  return n > 1e-12 ? (1.0 / n) * a : Point3{0, 0, 1};
}
// Any unit vector perpendicular to unit vector `t`.
Point3 Perpendicular(Point3 t) {
  Point3 helper = std::fabs(t.z) < 0.9 ? Point3{0, 0, 1} : Point3{1, 0, 0};
  return Normalized(Cross(t, helper));
}

// Index into LocationNames() of "L_<base>" (side > 0) or "R_<base>"; "BA" has no side.
int SideLocation(const char* base, int side) {
  int k = LocationIndex(std::string(side > 0 ? "L_" : "R_") + base);
  if (k < 0) throw Error(std::string("phantom: no location for ") + base);
  return k;
}

// Relative frequency of each location among aneurysms (both sides alike): a rough clinical
// ordering (ICA, PCOM, ACOM, MCA and the basilar tip common; AntChor, VA, PICA, SCA, PCA rarer),
// kept within a factor of two so that every location is seen often enough to be learned.
double ClinicalWeight(const std::string& location) {
  std::string base = location.size() > 2 && location[1] == '_' ? location.substr(2) : location;
  if (base == "ICA" || base == "PCOM" || base == "ACOM" || base == "MCA" || base == "BA") return 2.0;
  return 1.0;
}

// Builds one patient's vessels. Holds the random stream and the jitter scale.
class TreeBuilder {
 public:
  TreeBuilder(const PhantomOptions& options, PhantomRandom& rng, std::vector<PhantomVessel>& vessels)
      : jitter_(options.jitter), rng_(rng), vessels_(vessels) {
    head_scale_ = 1.0 + 0.05 * jitter_ * Clamp(rng_.Normal(), -2, 2);
    calibre_scale_ = 1.0 + 0.07 * jitter_ * Clamp(rng_.Normal(), -2, 2);
  }

  static double Clamp(double v, double lo, double hi) { return std::min(hi, std::max(lo, v)); }

  // A template point (mm, left side) mirrored to `side`, scaled to this head, jittered by
  // `sd` mm times the jitter option.
  Point3 P(double x, double y, double z, int side, double sd = 2.0) {
    Point3 p{side * x, y, z};
    p = head_scale_ * p;
    double s = sd * jitter_;
    return p + Point3{s * rng_.Normal(), s * rng_.Normal(), s * rng_.Normal()};
  }

  // A calibre: `r` mm scaled by this patient and jittered ±10% per vessel.
  double R(double r) { return r * calibre_scale_ * (1.0 + 0.1 * jitter_ * Clamp(rng_.Normal(), -2, 2)); }

  // A vessel through `control` (centripetal Catmull-Rom, ~1 mm samples), radius r0 -> r1,
  // with a smooth random wiggle of up to `wiggle_mm` that vanishes at both ends (junctions
  // stay where they are).
  int AddVessel(int location, int parent, const std::vector<Point3>& control, double r0, double r1,
                double wiggle_mm) {
    PhantomVessel v;
    v.location = location;
    v.parent = parent;
    v.points = Spline(control);
    Wiggle(v.points, wiggle_mm * jitter_);
    SetArcAndRadius(v, r0, r1);
    vessels_.push_back(std::move(v));
    return static_cast<int>(vessels_.size()) - 1;
  }

  // The point of vessel `k` nearest to `target` as an arc-length fraction.
  double NearestT(int k, Point3 target) const {
    const PhantomVessel& v = vessels_[k];
    size_t best = 0;
    double best_d = 1e300;
    for (size_t i = 0; i < v.points.size(); ++i) {
      double d = Norm(v.points[i] - target);
      if (d < best_d) best_d = d, best = i;
    }
    return v.arc_mm[best] / v.length();
  }

  Point3 PointAt(int k, double t) const { return Sample(vessels_[k], t, nullptr); }
  double RadiusAt(int k, double t) const {
    double r = 0;
    Sample(vessels_[k], t, &r);
    return r;
  }
  Point3 TangentAt(int k, double t) const {
    const PhantomVessel& v = vessels_[k];
    double dt = 1.0 / std::max(1.0, v.length());
    return Normalized(PointAt(k, std::min(1.0, t + dt)) - PointAt(k, std::max(0.0, t - dt)));
  }

  // Grows a random distal branch (and, for depth > 0, its own branches) from vessel `parent`
  // at arc fraction t: a smooth random walk that starts along `direction`, is drawn towards
  // `pull`, and stays inside the skull. Inherits the parent's filling at t; unnamed.
  void GrowBranch(int parent, double t, Point3 direction, Point3 pull, double length_mm, double radius_mm,
                  int depth) {
    constexpr double kStep = 1.5;
    Point3 p = PointAt(parent, t);
    Point3 d = Normalized(direction);
    pull = Normalized(pull);
    std::vector<Point3> pts{p};
    int steps = std::max(3, static_cast<int>(length_mm / kStep));
    Point3 turn{0, 0, 0};  // low-pass filtered noise: smooth curvature, no kinks
    for (int i = 0; i < steps; ++i) {
      turn = 0.8 * turn + 0.2 * Point3{rng_.Normal(), rng_.Normal(), rng_.Normal()};
      Point3 inward{0, 0, 0};
      // Skull: an ellipsoid around the brain; branches that reach its rim turn back in.
      Point3 q{p.x / 66.0, (p.y + 12.0) / 88.0, (p.z - 8.0) / 76.0};
      double rim = Norm(q);
      if (rim > 0.88) inward = (-4.0 * (rim - 0.88)) * Normalized(q);
      d = Normalized(d + 0.35 * turn + 0.10 * pull + inward);
      p = p + kStep * d;
      pts.push_back(p);
    }
    PhantomVessel v;
    v.parent = parent;
    v.points = pts;
    SetArcAndRadius(v, radius_mm, radius_mm * 0.6);
    v.hidden_start_mm = RadiusAt(parent, t);
    const PhantomVessel& pv = vessels_[parent];
    for (int inj = 0; inj < kNumInjections; ++inj) {
      double o = pv.OpacityAt(inj, t);
      if (o > 0) v.fill[inj] = {o, 0, 1};
    }
    vessels_.push_back(std::move(v));
    int k = static_cast<int>(vessels_.size()) - 1;
    if (depth <= 0 || radius_mm < 0.3) return;
    int children = 1 + rng_.Below(3);
    for (int c = 0; c < children; ++c) {
      double tc = rng_.Uniform(0.3, 0.85);
      Point3 tangent = TangentAt(k, tc);
      Point3 side = Perpendicular(tangent);
      double angle = rng_.Uniform(0, 2 * kPi);
      Point3 off = std::cos(angle) * side + std::sin(angle) * Normalized(Cross(tangent, side));
      Point3 dir = tangent + rng_.Uniform(0.6, 1.3) * off;
      GrowBranch(k, tc, dir, pull, length_mm * (1 - tc) * rng_.Uniform(0.8, 1.2), RadiusAt(k, tc) * 0.75, depth - 1);
    }
  }

  // `n` branches at random points of `parent` between t0 and t1.
  void GrowBranches(int parent, int n, double t0, double t1, Point3 direction, double spread, Point3 pull,
                    double length_mm, double radius_mm, int depth) {
    for (int i = 0; i < n; ++i) {
      double t = rng_.Uniform(t0, t1);
      Point3 dir = Normalized(direction) + spread * Point3{rng_.Normal(), rng_.Normal(), rng_.Normal()};
      GrowBranch(parent, t, dir, pull, length_mm * rng_.Uniform(0.7, 1.3), R(radius_mm), depth);
    }
  }

  PhantomRandom& rng() { return rng_; }

 private:
  static Point3 Sample(const PhantomVessel& v, double t, double* radius) {
    double s = TreeBuilder::Clamp(t, 0, 1) * v.length();
    auto it = std::lower_bound(v.arc_mm.begin(), v.arc_mm.end(), s);
    size_t i = std::min<size_t>(std::max<ptrdiff_t>(it - v.arc_mm.begin(), 1), v.points.size() - 1);
    double seg = v.arc_mm[i] - v.arc_mm[i - 1];
    double f = seg > 0 ? TreeBuilder::Clamp((s - v.arc_mm[i - 1]) / seg, 0, 1) : 0;
    if (radius) *radius = v.radius_mm[i - 1] + f * (v.radius_mm[i] - v.radius_mm[i - 1]);
    return v.points[i - 1] + f * (v.points[i] - v.points[i - 1]);
  }

  static void SetArcAndRadius(PhantomVessel& v, double r0, double r1) {
    v.arc_mm.assign(v.points.size(), 0);
    for (size_t i = 1; i < v.points.size(); ++i) v.arc_mm[i] = v.arc_mm[i - 1] + Norm(v.points[i] - v.points[i - 1]);
    v.radius_mm.resize(v.points.size());
    for (size_t i = 0; i < v.points.size(); ++i) {
      double f = v.length() > 0 ? v.arc_mm[i] / v.length() : 0;
      v.radius_mm[i] = r0 + f * (r1 - r0);
    }
  }

  // Centripetal Catmull-Rom (no cusps or self-loops between control points), ~1 mm samples.
  static std::vector<Point3> Spline(const std::vector<Point3>& c) {
    std::vector<Point3> ext;
    ext.push_back(c[0] + (c[0] - c[1]));
    ext.insert(ext.end(), c.begin(), c.end());
    ext.push_back(c.back() + (c.back() - c[c.size() - 2]));
    std::vector<Point3> out{c[0]};
    for (size_t i = 1; i + 2 < ext.size(); ++i) {
      Point3 p0 = ext[i - 1], p1 = ext[i], p2 = ext[i + 1], p3 = ext[i + 2];
      double t0 = 0;
      double t1 = t0 + std::sqrt(std::max(1e-6, Norm(p1 - p0)));
      double t2 = t1 + std::sqrt(std::max(1e-6, Norm(p2 - p1)));
      double t3 = t2 + std::sqrt(std::max(1e-6, Norm(p3 - p2)));
      int n = std::max(1, static_cast<int>(std::ceil(Norm(p2 - p1) / 1.0)));
      for (int j = 1; j <= n; ++j) {
        double t = t1 + (t2 - t1) * j / n;
        Point3 a1 = ((t1 - t) / (t1 - t0)) * p0 + ((t - t0) / (t1 - t0)) * p1;
        Point3 a2 = ((t2 - t) / (t2 - t1)) * p1 + ((t - t1) / (t2 - t1)) * p2;
        Point3 a3 = ((t3 - t) / (t3 - t2)) * p2 + ((t - t2) / (t3 - t2)) * p3;
        Point3 b1 = ((t2 - t) / (t2 - t0)) * a1 + ((t - t0) / (t2 - t0)) * a2;
        Point3 b2 = ((t3 - t) / (t3 - t1)) * a2 + ((t - t1) / (t3 - t1)) * a3;
        out.push_back(((t2 - t) / (t2 - t1)) * b1 + ((t - t1) / (t2 - t1)) * b2);
      }
    }
    return out;
  }

  void Wiggle(std::vector<Point3>& pts, double amplitude_mm) {
    if (amplitude_mm <= 0 || pts.size() < 3) return;
    double total = 0;
    std::vector<double> arc(pts.size(), 0);
    for (size_t i = 1; i < pts.size(); ++i) arc[i] = total += Norm(pts[i] - pts[i - 1]);
    double wavelength = rng_.Uniform(10, 25), phase = rng_.Uniform(0, 2 * kPi);
    double wavelength2 = rng_.Uniform(10, 25), phase2 = rng_.Uniform(0, 2 * kPi);
    std::vector<Point3> out = pts;
    for (size_t i = 1; i + 1 < pts.size(); ++i) {
      Point3 tangent = Normalized(pts[i + 1] - pts[i - 1]);
      Point3 n1 = Perpendicular(tangent), n2 = Cross(tangent, n1);
      double envelope = std::sin(kPi * arc[i] / total);
      double a = amplitude_mm * envelope;
      out[i] = pts[i] + (a * std::sin(2 * kPi * arc[i] / wavelength + phase)) * n1 +
               (a * std::sin(2 * kPi * arc[i] / wavelength2 + phase2)) * n2;
    }
    pts = out;
  }

  double jitter_, head_scale_ = 1, calibre_scale_ = 1;
  PhantomRandom& rng_;
  std::vector<PhantomVessel>& vessels_;
};

VesselFill Full() { return {1, 0, 1}; }

// Where aneurysms of each location sit: on which vessel and between which arc fractions; at an
// end of the range marked `apex`, a sac points along the vessel (a bifurcation's apex).
struct AneurysmSite {
  int vessel = -1;
  double t0 = 0, t1 = 1;
  double apex_chance = 0;  // chance that the sac sits at t1 on the vessel's axis
};

// Builds the named trunks and the distal branches; returns the aneurysm site of each location.
std::array<AneurysmSite, kNumLocations> BuildTree(TreeBuilder& b, std::vector<PhantomVessel>& v) {
  PhantomRandom& rng = b.rng();
  std::array<AneurysmSite, kNumLocations> sites;
  const int kBA = LocationIndex("BA");
  auto injection = [](bool carotid, int side) {
    if (carotid) return side > 0 ? kLeftCarotid : kRightCarotid;
    return side > 0 ? kLeftVertebral : kRightVertebral;
  };
  constexpr int kPosteriorGroup = 0;  // both VAs, the basilar and both PCAs: one solid

  // --- vertebro-basilar system -------------------------------------------------------------
  Point3 vb_junction = b.P(0, -18, -32, 1, 2.0);
  Point3 ba_tip = b.P(0, -12, 0, 1, 2.0);
  ba_tip.x = vb_junction.x + 0.5 * (ba_tip.x - vb_junction.x);
  std::array<int, 2> va{}, pica{}, sca{}, pca{};
  std::array<Point3, 2> p1p2{};  // P1-P2 junction of each side: where the PCOM joins
  std::array<double, 2> pca_junction_t{};
  // Vertebral dominance: one side is often larger.
  double dominance = 0.25 * b.Clamp(rng.Normal(), -2, 2);
  for (int s = 0; s < 2; ++s) {
    int side = s == 0 ? 1 : -1;
    double r_va = b.R(1.6 * (1 + side * dominance));
    va[s] = b.AddVessel(SideLocation("VA", side), -1,
                        {b.P(26, -12, -95, side), b.P(25, -14, -72, side), b.P(27, -20, -60, side, 2.5),
                         b.P(22, -32, -54, side, 2.5), b.P(13, -28, -47, side), b.P(7, -23, -39, side), vb_junction},
                        r_va, r_va * 0.9, 1.0);
    v[va[s]].group = kPosteriorGroup;
    v[va[s]].fill[injection(false, side)] = Full();
    v[va[s]].fill[injection(false, -side)] = {0.4, 0.8, 1};  // reflux down from the confluence
  }
  int ba = b.AddVessel(kBA, -1,
                       {vb_junction, b.P(0.6, -16, -21, 1, 1.5), b.P(0, -14, -9, 1, 1.5), ba_tip},
                       b.R(1.6), b.R(1.4), 1.2);
  v[ba].group = kPosteriorGroup;
  v[ba].fill[kLeftVertebral] = v[ba].fill[kRightVertebral] = Full();
  sites[kBA] = {ba, 0.35, 1.0, 0.5};
  for (int s = 0; s < 2; ++s) {
    int side = s == 0 ? 1 : -1;
    // PICA from the intradural VA: a caudal loop round the tonsil, then the cerebellum.
    double t_pica = b.NearestT(va[s], b.P(9, -25, -43, side, 1.0));
    Point3 o = b.PointAt(va[s], t_pica);
    pica[s] = b.AddVessel(SideLocation("PICA", side), va[s],
                          {o, b.P(12, -30, -51, side), b.P(14, -38, -57, side), b.P(16, -45, -51, side),
                           b.P(13, -50, -43, side), b.P(18, -57, -38, side), b.P(24, -64, -32, side)},
                          b.R(0.65), b.R(0.45), 1.0);
    v[pica[s]].hidden_start_mm = b.RadiusAt(va[s], t_pica);
    v[pica[s]].fill[injection(false, side)] = Full();
    sites[SideLocation("VA", side)] = {va[s], 0.62, 0.95, 0};
    sites[SideLocation("PICA", side)] = {pica[s], 0.03, 0.25, 0};
    b.GrowBranches(pica[s], 1 + rng.Below(2), 0.6, 0.95, {side * 0.5, -1, 0.3}, 0.4, {side * 0.3, -1, 0.5}, 25,
                   0.4, 1);
    // AICA (unnamed): from the lower basilar, laterally to the cerebellopontine angle.
    double t_aica = b.NearestT(ba, b.P(0, -16, -22, 1, 1.0));
    Point3 a = b.PointAt(ba, t_aica);
    int aica = b.AddVessel(-1, ba,
                           {a, b.P(7, -17, -24, side), b.P(14, -21, -26, side), b.P(20, -29, -27, side),
                            b.P(23, -38, -26, side)},
                           b.R(0.5), b.R(0.35), 1.0);
    v[aica].hidden_start_mm = b.RadiusAt(ba, t_aica);
    v[aica].fill[kLeftVertebral] = v[aica].fill[kRightVertebral] = Full();
    // SCA: just below the tip, around the brainstem to the upper cerebellum.
    double t_sca = b.NearestT(ba, b.P(0, -12.5, -3.5, 1, 0.5));
    Point3 c = b.PointAt(ba, std::min(t_sca, 0.93));
    sca[s] = b.AddVessel(SideLocation("SCA", side), ba,
                         {c, b.P(5, -13, -4, side, 1.0), b.P(11, -17, -4, side), b.P(15, -25, -2, side),
                          b.P(15, -36, 2, side), b.P(12, -46, 6, side)},
                         b.R(0.75), b.R(0.5), 1.0);
    v[sca[s]].hidden_start_mm = b.RadiusAt(ba, t_sca);
    v[sca[s]].fill[kLeftVertebral] = v[sca[s]].fill[kRightVertebral] = Full();
    sites[SideLocation("SCA", side)] = {sca[s], 0.03, 0.3, 0};
    b.GrowBranches(sca[s], 2 + rng.Below(2), 0.5, 0.95, {side * 0.3, -0.8, 0.5}, 0.4, {side * 0.4, -1, 0.2}, 25,
                   0.4, 1);
    // PCA: P1 from the tip to the PCOM junction, P2 round the midbrain, P3/P4 to the occiput.
    p1p2[s] = b.P(8.5, -14, -0.5, side, 1.2);
    pca[s] = b.AddVessel(SideLocation("PCA", side), -1,
                         {ba_tip, b.P(4, -12.5, 0.5, side, 0.8), p1p2[s], b.P(13, -19, 1, side), b.P(18, -28, 4, side),
                          b.P(20, -40, 8, side, 2.5), b.P(17, -55, 10, side, 3), b.P(13, -68, 13, side, 3),
                          b.P(10, -82, 16, side, 3)},
                         b.R(1.1), b.R(0.75), 1.2);
    v[pca[s]].group = kPosteriorGroup;
    v[pca[s]].fill[kLeftVertebral] = v[pca[s]].fill[kRightVertebral] = Full();
    pca_junction_t[s] = b.NearestT(pca[s], p1p2[s]);
    // The carotid injection reaches the P2 through the PCOM, diluted.
    v[pca[s]].fill[injection(true, side)] = {0.3, pca_junction_t[s], std::min(1.0, pca_junction_t[s] + 0.3)};
    sites[SideLocation("PCA", side)] = {pca[s], 0.04, std::min(0.9, pca_junction_t[s] + 0.15), 0};
    // Cortical branches: parieto-occipital (up), temporal (down and out), calcarine (back).
    b.GrowBranches(pca[s], 1, 0.55, 0.75, {side * 0.1, -0.4, 1}, 0.2, {0, -0.5, 1}, 55, 0.6, 2);
    b.GrowBranches(pca[s], 1 + rng.Below(2), 0.3, 0.6, {side * 0.8, -0.2, -0.4}, 0.3, {side * 0.6, -0.4, -0.3},
                   40, 0.55, 1);
    b.GrowBranches(pca[s], 1 + rng.Below(2), 0.75, 0.95, {side * 0.2, -1, 0.1}, 0.3, {0, -1, 0.2}, 30, 0.45, 1);
  }

  // --- carotid systems -----------------------------------------------------------------------
  std::array<int, 2> aca{};
  std::array<double, 2> acom_t{};
  for (int s = 0; s < 2; ++s) {
    int side = s == 0 ? 1 : -1;
    const int inj = injection(true, side);
    const int carotid_group = 1 + s;  // ICA, A1-A2 and M1 meet at the terminus: one solid
    // ICA: cervical, petrous (anteromedial), cavernous siphon (the C of the lateral view),
    // supraclinoid, terminus.
    int ica = b.AddVessel(SideLocation("ICA", side), -1,
                          {b.P(20, -2, -95, side), b.P(20, -4, -62, side, 3), b.P(18, 0, -44, side),
                           b.P(15, 8, -36, side), b.P(13, 13, -26, side), b.P(13, 17, -16, side, 2.5),
                           b.P(14, 12, -7, side), b.P(15, 5, -3, side, 1.5), b.P(15, 2, 2, side, 1.5)},
                          b.R(2.0), b.R(1.7), 0.8);
    v[ica].group = carotid_group;
    v[ica].fill[inj] = Full();
    sites[SideLocation("ICA", side)] = {ica, 0.45, 0.86, 0};
    Point3 terminus = v[ica].points.back();
    // Ophthalmic (unnamed): forward to the orbit.
    double t_oph = b.NearestT(ica, b.P(14, 13, -9, side, 1.0));
    int oph = b.AddVessel(-1, ica,
                          {b.PointAt(ica, t_oph), b.P(16, 22, -7, side), b.P(22, 35, -5, side), b.P(26, 50, -3, side)},
                          b.R(0.55), b.R(0.4), 1.0);
    v[oph].hidden_start_mm = b.RadiusAt(ica, t_oph);
    v[oph].fill[inj] = Full();
    // PCOM: posterior wall of the supraclinoid ICA back to the P1-P2 junction. Its calibre
    // varies most of all (hypoplastic to fetal).
    double t_pcom = b.NearestT(ica, b.P(15, 4, -3, side, 0.5));
    int pcom = b.AddVessel(SideLocation("PCOM", side), ica,
                           {b.PointAt(ica, t_pcom), b.P(13, -3, -3, side, 1.5), b.P(11, -9, -2, side, 1.5), p1p2[s]},
                           0, 0, 0.5);
    double r_pcom = b.Clamp(b.R(0.6) * (1 + 0.3 * rng.Normal()), 0.35, 1.0);
    for (double& r : v[pcom].radius_mm) r = r_pcom;
    v[pcom].hidden_start_mm = b.RadiusAt(ica, t_pcom);
    v[pcom].hidden_end_mm = v[pca[s]].radius_mm[0];
    v[pcom].fill[inj] = Full();
    // From the vertebral side it fills back from the PCA, part way.
    v[pcom].fill[kLeftVertebral] = v[pcom].fill[kRightVertebral] = {0.35, 0.5, 1};
    sites[SideLocation("PCOM", side)] = {pcom, 0.04, 0.25, 0};
    // Anterior choroidal: thin, just distal to the PCOM, back and out.
    double t_ach = std::min(0.99, t_pcom + 2.0 / v[ica].length());
    int ach = b.AddVessel(SideLocation("AntChor", side), ica,
                          {b.PointAt(ica, t_ach), b.P(18, -2, 1, side, 1.5), b.P(22, -9, 5, side), b.P(25, -17, 9, side),
                           b.P(26, -26, 14, side)},
                          b.R(0.45), b.R(0.35), 1.0);
    v[ach].hidden_start_mm = b.RadiusAt(ica, t_ach);
    v[ach].fill[inj] = Full();
    sites[SideLocation("AntChor", side)] = {ach, 0.04, 0.3, 0};
    // ACA: A1 medially to the ACOM junction, A2 up and forward round the genu of the corpus
    // callosum, pericallosal back along it.
    Point3 acom_junction = b.P(1.8, 14, 8, side, 1.2);
    acom_junction.x = side * std::max(1.3, side * acom_junction.x);  // stays on its side
    aca[s] = b.AddVessel(SideLocation("ACA", side), -1,
                         {terminus, b.P(9, 8, 5, side, 1.5), acom_junction, b.P(2, 18, 14, side, 1.0),
                          b.P(2, 25, 24, side, 1.5), b.P(2, 31, 35, side, 2), b.P(2, 27, 47, side, 2.5),
                          b.P(2, 15, 56, side, 2.5), b.P(2, 0, 62, side, 2.5), b.P(2, -20, 63, side, 3),
                          b.P(2, -40, 58, side, 3)},
                         b.R(1.15), b.R(0.7), 0.6);
    v[aca[s]].group = carotid_group;
    v[aca[s]].hidden_start_mm = 0;
    v[aca[s]].fill[inj] = Full();
    acom_t[s] = b.NearestT(aca[s], acom_junction);
    // Across the ACOM the other carotid fills a little of this A2.
    v[aca[s]].fill[injection(true, -side)] = {0.45, acom_t[s], std::min(1.0, acom_t[s] + 0.3)};
    double t_genu = b.NearestT(aca[s], b.P(2, 31, 35, side, 0));
    sites[SideLocation("ACA", side)] = {aca[s], acom_t[s] + 0.05, std::max(acom_t[s] + 0.1, t_genu), 0};
    // Callosomarginal, frontopolar and small pericallosal branches (fill: ipsilateral only).
    size_t first_aca_branch = v.size();
    b.GrowBranches(aca[s], 1, t_genu - 0.05, t_genu + 0.05, {0, 0.5, 1}, 0.2, {0, -0.3, 1}, 70, 0.7, 3);
    b.GrowBranches(aca[s], 1, acom_t[s] + 0.05, acom_t[s] + 0.15, {0, 1, 0.2}, 0.2, {0, 1, 0.4}, 35, 0.5, 1);
    b.GrowBranches(aca[s], 3 + rng.Below(3), t_genu + 0.1, 0.95, {side * 0.2, -0.2, 1}, 0.3, {0, 0, 1}, 28, 0.45,
                   1);
    for (size_t k = first_aca_branch; k < v.size(); ++k) v[k].fill[injection(true, -side)] = {};
    // MCA: M1 laterally to the bifurcation, then 2-3 M2 trunks up the insula and cortical
    // branches over the convexity (the candelabra of the frontal view).
    int m1 = b.AddVessel(SideLocation("MCA", side), -1,
                         {terminus, b.P(22, 3, 3, side, 1.5), b.P(30, 3, 4, side), b.P(37, 1, 6, side),
                          b.P(41, 0, 7, side)},
                         b.R(1.4), b.R(1.2), 0.8);
    v[m1].group = carotid_group;
    v[m1].fill[inj] = Full();
    sites[SideLocation("MCA", side)] = {m1, 0.55, 1.0, 0.5};
    int trunks = 2 + (rng.Chance(0.3) ? 1 : 0);
    for (int k = 0; k < trunks; ++k) {
      double up = trunks == 2 ? (k == 0 ? 1.0 : 0.3) : 1.0 - 0.35 * k;
      double forward = trunks == 2 ? (k == 0 ? 0.5 : -0.8) : 0.6 - 0.7 * k;
      b.GrowBranch(m1, 1.0, {side * 0.9, forward, 0.6 * up}, {side * 0.4, forward * 0.4, 1}, b.rng().Uniform(70, 95),
                   b.R(0.95), 3);
    }
    // Lenticulostriate perforators: tiny, straight up from the M1.
    b.GrowBranches(m1, 2 + rng.Below(3), 0.2, 0.7, {0, 0, 1}, 0.25, {0, 0, 1}, 18, 0.3, 0);
  }
  // ACOM: two halves from each A1-A2 junction to the midline, drawn as one solid. Each
  // injection fills its own half fully and the other's faintly, so an ACOM sac is darkest in
  // the views of the side it belongs to.
  Point3 mid = 0.5 * (b.PointAt(aca[0], acom_t[0]) + b.PointAt(aca[1], acom_t[1])) + Point3{0, 0.8, 0.3};
  double r_acom = b.Clamp(b.R(0.7), 0.45, 1.0);
  for (int s = 0; s < 2; ++s) {
    int side = s == 0 ? 1 : -1;
    Point3 start = b.PointAt(aca[s], acom_t[s]);
    int acom = b.AddVessel(SideLocation("ACOM", side), aca[s], {start, 0.5 * (start + mid) + Point3{0, 0.3, 0}, mid},
                           r_acom, r_acom, 0);
    v[acom].group = 3;
    v[acom].hidden_start_mm = b.RadiusAt(aca[s], acom_t[s]);
    v[acom].fill[injection(true, side)] = Full();
    v[acom].fill[injection(true, -side)] = {0.35, 0, 1};
    sites[SideLocation("ACOM", side)] = {acom, 0.25, 0.85, 0};
  }
  return sites;
}

// Fusiform dilatations (not aneurysms): a smooth widening along a vessel, longer than wide.
void AddDistractors(const PhantomOptions& options, PhantomRandom& rng, std::vector<PhantomVessel>& vessels) {
  // Poisson count (Knuth).
  int count = 0;
  double limit = std::exp(-options.distractors), product = rng.Uniform();
  while (product > limit) ++count, product *= rng.Uniform();
  double total = 0;
  for (const auto& v : vessels) total += v.length();
  for (int i = 0; i < count; ++i) {
    double pick = rng.Uniform() * total;
    size_t k = 0;
    while (k + 1 < vessels.size() && pick > vessels[k].length()) pick -= vessels[k++].length();
    PhantomVessel& v = vessels[k];
    double centre = rng.Uniform(0.15, 0.85) * v.length();
    double amplitude = rng.Uniform(0.3, 0.7);
    double width = rng.Uniform(2.5, 4.0) * std::max(1.0, v.radius_mm[0]);  // sigma along the axis, mm
    for (size_t j = 0; j < v.points.size(); ++j) {
      double d = (v.arc_mm[j] - centre) / width;
      v.radius_mm[j] *= 1 + amplitude * std::exp(-0.5 * d * d);
    }
  }
}

// Places 1..max_aneurysms sacs on named sites, apart from one another.
void AddAneurysms(const PhantomOptions& options, PhantomRandom& rng, const std::vector<PhantomVessel>& vessels,
                  const std::array<AneurysmSite, kNumLocations>& sites, std::vector<PhantomAneurysm>& out) {
  if (!rng.Chance(options.prevalence)) return;
  int count = 1;
  while (count < options.max_aneurysms && rng.Chance(0.25)) ++count;
  std::array<double, kNumLocations> weight{};
  double total = 0;
  for (int l = 0; l < kNumLocations; ++l) total += weight[l] = options.uniform_locations ? 1.0 : ClinicalWeight(LocationNames()[l]);
  for (int tries = 0; static_cast<int>(out.size()) < count && tries < 50; ++tries) {
    double pick = rng.Uniform() * total;
    int l = 0;
    while (l + 1 < kNumLocations && pick >= weight[l]) pick -= weight[l++];
    const AneurysmSite& site = sites[l];
    const PhantomVessel& v = vessels[site.vessel];
    PhantomAneurysm a;
    a.location = l;
    a.vessel = site.vessel;
    a.radius_mm = rng.Uniform(options.aneurysm_radius_min_mm, options.aneurysm_radius_max_mm);
    bool apex = rng.Chance(site.apex_chance);
    a.t = apex ? site.t1 : rng.Uniform(site.t0, site.t1);
    // Point, tangent and radius of the parent at t.
    double s = a.t * v.length();
    size_t i = 1;
    while (i + 1 < v.points.size() && v.arc_mm[i] < s) ++i;
    Point3 p = v.points[i - 1], q = v.points[i];
    double f = v.arc_mm[i] > v.arc_mm[i - 1] ? std::min(1.0, std::max(0.0, (s - v.arc_mm[i - 1]) / (v.arc_mm[i] - v.arc_mm[i - 1]))) : 0;
    Point3 at = p + f * (q - p);
    double r = v.radius_mm[i - 1] + f * (v.radius_mm[i] - v.radius_mm[i - 1]);
    // A sac narrower than its parent hardly shows as more than a bump of the wall; clinically
    // such sacs are seldom found either. Sacs are at least 1.1 parent radii (within the range).
    a.radius_mm = std::max(a.radius_mm, std::min(options.aneurysm_radius_max_mm, 1.1 * r));
    Point3 tangent = Normalized(q - p);
    Point3 dir;
    if (apex) {
      dir = tangent;
    } else {
      Point3 n1 = Perpendicular(tangent), n2 = Cross(tangent, n1);
      double angle = rng.Uniform(0, 2 * kPi);
      dir = std::cos(angle) * n1 + std::sin(angle) * n2;
    }
    // The neck overlaps the wall: the sac's centre is 0.55 sac radii outside the vessel.
    a.center = at + (r + 0.55 * a.radius_mm) * dir;
    bool clear = true;
    for (const auto& other : out)
      if (Norm(other.center - a.center) < other.radius_mm + a.radius_mm + 1.0) clear = false;
    if (clear) out.push_back(a);
  }
}

void MakePose(const PhantomOptions& options, PhantomRandom& rng, PhantomPatient& p) {
  double sd = 3.0 * kPi / 180 * options.jitter;
  double a = sd * rng.Normal(), b = sd * rng.Normal(), c = sd * rng.Normal();
  // R = Rz(c) * Ry(b) * Rx(a)
  double ca = std::cos(a), sa = std::sin(a), cb = std::cos(b), sb = std::sin(b), cc = std::cos(c), sc = std::sin(c);
  p.rotation = {cc * cb, cc * sb * sa - sc * ca, cc * sb * ca + sc * sa,
                sc * cb, sc * sb * sa + cc * ca, sc * sb * ca - cc * sa,
                -sb,     cb * sa,                cb * ca};
  double t = 4.0 * options.jitter;
  p.translation = {t * rng.Normal(), t * rng.Normal(), t * rng.Normal()};
  double m = 1.5 * options.jitter;
  for (auto& shift : p.injection_shift) shift = {m * rng.Normal(), m * rng.Normal(), m * rng.Normal()};
}

void MakeViewConditions(const PhantomOptions& options, PhantomRandom& rng, PhantomPatient& p) {
  std::array<double, kNumInjections> injected{};
  for (double& c : injected) c = rng.Uniform(0.75, 1.25);
  for (int view = 0; view < kNumViews; ++view) {
    PhantomViewConditions& c = p.views[view];
    c.background = rng.Uniform(0.70, 0.90);
    c.concentration = injected[view / 2] * rng.Uniform(0.92, 1.08);
    c.noise = options.noise * rng.Uniform(0.7, 1.3);
    c.blur_mm = rng.Uniform(0.28, 0.42);
    for (int k = 0; k < 3; ++k) {
      double wavelength = rng.Uniform(60, 250), angle = rng.Uniform(0, 2 * kPi);
      c.residue_amplitude[k] = rng.Uniform(0, 0.03);
      c.residue_kx[k] = 2 * kPi / wavelength * std::cos(angle);
      c.residue_ky[k] = 2 * kPi / wavelength * std::sin(angle);
      c.residue_phase[k] = rng.Uniform(0, 2 * kPi);
    }
    c.noise_seed = rng.Bits();
  }
}

}  // namespace

double PhantomVessel::OpacityAt(int injection, double t) const {
  const VesselFill& f = fill[injection];
  return (f.opacity > 0 && t >= f.from && t <= f.to) ? f.opacity : 0.0;
}

void ValidatePhantomOptions(const PhantomOptions& o) {
  auto require = [](bool ok, const std::string& what) {
    if (!ok) throw Error("phantom option " + what);
  };
  require(o.patients >= 1, "patients: must be at least 1 (got " + std::to_string(o.patients) + ")");
  require(o.test_patients >= 0, "test-patients: must be 0 or more (got " + std::to_string(o.test_patients) + ")");
  require(o.first_index >= 0 && static_cast<int64_t>(o.first_index) + o.patients + o.test_patients <= INT32_MAX,
          "first-index: indices must fit in 0..2^31-1");
  require(o.resolution >= 64 && o.resolution <= 4096,
          "resolution: must be 64..4096 pixels (got " + std::to_string(o.resolution) + ")");
  require(o.prevalence >= 0 && o.prevalence <= 1, "prevalence: must be in [0, 1]");
  require(o.aneurysm_radius_min_mm > 0 && o.aneurysm_radius_min_mm <= o.aneurysm_radius_max_mm &&
              o.aneurysm_radius_max_mm <= 10,
          "aneurysm-size: need 0 < MIN <= MAX <= 10 (sac radius, mm)");
  require(o.max_aneurysms >= 1 && o.max_aneurysms <= 10, "max-aneurysms: must be 1..10");
  require(o.aneurysm_contrast > 0 && o.aneurysm_contrast <= 10, "contrast: must be in (0, 10]");
  require(o.noise >= 0 && o.noise <= 100, "noise: must be 0..100 grey levels");
  require(o.jitter >= 0 && o.jitter <= 3, "jitter: must be 0..3");
  require(o.distractors >= 0 && o.distractors <= 20, "distractors: must be 0..20 per patient");
  require(o.jpeg_quality >= 1 && o.jpeg_quality <= 100, "jpeg-quality: must be 1..100");
  require(o.threads >= 0, "threads: must be 0 (all cores) or more");
}

PhantomPatient MakePhantomPatient(const PhantomOptions& options, int32_t index) {
  uint64_t base = MixSeed(options.seed, static_cast<uint64_t>(index));
  PhantomRandom anatomy_rng(MixSeed(base, 1)), pose_rng(MixSeed(base, 2)), aneurysm_rng(MixSeed(base, 3)),
      view_rng(MixSeed(base, 4));
  PhantomPatient p;
  p.index = index;
  TreeBuilder builder(options, anatomy_rng, p.vessels);
  std::array<AneurysmSite, kNumLocations> sites = BuildTree(builder, p.vessels);
  AddDistractors(options, anatomy_rng, p.vessels);
  MakePose(options, pose_rng, p);
  MakeViewConditions(options, view_rng, p);
  AddAneurysms(options, aneurysm_rng, p.vessels, sites, p.aneurysms);
  return p;
}

PatientLabels PhantomLabels(const PhantomPatient& patient) {
  PatientLabels labels;
  labels.index = patient.index;
  labels.aneurysm = patient.aneurysms.empty() ? 0 : 1;
  for (const auto& a : patient.aneurysms) labels.locations[a.location] = 1;
  return labels;
}

}  // namespace angiotrain
