// MPI environment, errors, communicators, groups, datatypes and operators.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <set>

#include "mpi/async.h"
#include "mpi/state.h"

namespace FMI::Mpi {

State& state() {
  static State s;
  return s;
}

void require_init(const char* fn) {
  const State& s = state();
  if (!s.initialized) FMI_MPI_FAIL(MPI_ERR_OTHER, fn, ": MPI_Init has not been called");
  if (s.finalized) FMI_MPI_FAIL(MPI_ERR_OTHER, fn, ": called after MPI_Finalize");
}

CommObj& comm(MPI_Comm c) {
  auto& m = state().comms;
  auto it = m.find(c);
  if (c == MPI_COMM_NULL || it == m.end()) FMI_MPI_FAIL(MPI_ERR_COMM, "invalid communicator ", c);
  return *it->second;
}

const TypeObj& type(MPI_Datatype t) {
  auto& m = state().types;
  auto it = m.find(t);
  if (t == MPI_DATATYPE_NULL || it == m.end()) FMI_MPI_FAIL(MPI_ERR_TYPE, "invalid datatype ", t);
  if (!it->second.committed)
    FMI_MPI_FAIL(MPI_ERR_TYPE, "datatype ", t, " is not committed (call MPI_Type_commit)");
  return it->second;
}

const OpObj& op(MPI_Op o) {
  auto& m = state().ops;
  auto it = m.find(o);
  if (o == MPI_OP_NULL || it == m.end()) FMI_MPI_FAIL(MPI_ERR_OP, "invalid operator ", o);
  return it->second;
}

std::size_t bytes(int count, MPI_Datatype t) {
  if (count < 0) FMI_MPI_FAIL(MPI_ERR_COUNT, "negative count ", count);
  return static_cast<std::size_t>(count) * type(t).size;
}

int error_class_of(const std::exception& e) {
  if (auto* m = dynamic_cast<const MpiError*>(&e)) return m->error_class;
  if (dynamic_cast<const TimeoutError*>(&e)) return MPI_ERR_TIMEOUT;
  if (dynamic_cast<const PeerError*>(&e)) return MPI_ERR_PROC_FAILED;
  if (dynamic_cast<const ChannelError*>(&e)) return MPI_ERR_CHANNEL;
  if (dynamic_cast<const ConfigError*>(&e)) return MPI_ERR_CONFIG;
  if (dynamic_cast<const UsageError*>(&e)) return MPI_ERR_ARG;
  if (dynamic_cast<const std::bad_alloc*>(&e)) return MPI_ERR_NO_MEM;
  return MPI_ERR_INTERN;
}

namespace {

int world_rank() {
  auto& m = state().comms;
  auto it = m.find(MPI_COMM_WORLD);
  return it == m.end() ? 0 : it->second->rank;
}

[[noreturn]] void end_job(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
  // fmirun ends the other functions when one exits non-zero; 0 would look like success.
  std::_Exit((code & 0xff) ? (code & 0xff) : 1);
}

const char* class_text(int cls) {
  switch (cls) {
    case MPI_SUCCESS: return "MPI_SUCCESS: no errors";
    case MPI_ERR_BUFFER: return "MPI_ERR_BUFFER: invalid buffer pointer";
    case MPI_ERR_COUNT: return "MPI_ERR_COUNT: invalid count argument";
    case MPI_ERR_TYPE: return "MPI_ERR_TYPE: invalid datatype";
    case MPI_ERR_TAG: return "MPI_ERR_TAG: invalid tag";
    case MPI_ERR_COMM: return "MPI_ERR_COMM: invalid communicator";
    case MPI_ERR_RANK: return "MPI_ERR_RANK: invalid rank";
    case MPI_ERR_ROOT: return "MPI_ERR_ROOT: invalid root";
    case MPI_ERR_GROUP: return "MPI_ERR_GROUP: invalid group";
    case MPI_ERR_OP: return "MPI_ERR_OP: invalid reduce operation";
    case MPI_ERR_TOPOLOGY: return "MPI_ERR_TOPOLOGY: invalid topology";
    case MPI_ERR_DIMS: return "MPI_ERR_DIMS: invalid dimensions";
    case MPI_ERR_ARG: return "MPI_ERR_ARG: invalid argument";
    case MPI_ERR_UNKNOWN: return "MPI_ERR_UNKNOWN: unknown error";
    case MPI_ERR_TRUNCATE: return "MPI_ERR_TRUNCATE: message truncated";
    case MPI_ERR_OTHER: return "MPI_ERR_OTHER: known error not in list";
    case MPI_ERR_INTERN: return "MPI_ERR_INTERN: internal error";
    case MPI_ERR_IN_STATUS: return "MPI_ERR_IN_STATUS: error code is in status";
    case MPI_ERR_PENDING: return "MPI_ERR_PENDING: pending request";
    case MPI_ERR_REQUEST: return "MPI_ERR_REQUEST: invalid request";
    case MPI_ERR_NO_MEM: return "MPI_ERR_NO_MEM: out of memory";
    case MPI_ERR_UNSUPPORTED_OPERATION:
      return "MPI_ERR_UNSUPPORTED_OPERATION: operation not supported by FMI's MPI layer";
    case MPI_ERR_TIMEOUT: return "MPI_ERR_TIMEOUT: an FMI operation passed its deadline";
    case MPI_ERR_PROC_FAILED: return "MPI_ERR_PROC_FAILED: a peer failed or misbehaved";
    case MPI_ERR_CHANNEL: return "MPI_ERR_CHANNEL: an FMI channel's transport failed";
    case MPI_ERR_CONFIG: return "MPI_ERR_CONFIG: invalid FMI configuration";
    default: return nullptr;
  }
}

}  // namespace

int handle_error(const char* fn, MPI_Comm c, int cls, const std::string& what) {
  State& s = state();
  std::string msg = what.rfind(fn, 0) == 0 ? what : std::string(fn) + ": " + what;
  s.last_message[cls] = msg;
  MPI_Errhandler h = MPI_ERRORS_ARE_FATAL;
  auto it = s.comms.find(c);
  if (it == s.comms.end()) it = s.comms.find(MPI_COMM_WORLD);
  if (it != s.comms.end()) h = it->second->errhandler;
  if (h == MPI_ERRORS_ARE_FATAL || !s.initialized) {
    std::fprintf(stderr, "fmi-mpi: rank %d: %s (%s); aborting the job\n", world_rank(), msg.c_str(),
                 class_text(cls));
    end_job(cls);
  }
  return cls;
}

// ---- reductions ----------------------------------------------------------------

namespace {

template <typename T>
bool arith(int o, const T* a, T* b, std::size_t n) {
  constexpr bool integral = std::is_integral_v<T>;
  switch (o) {
    case MPI_SUM:
      for (std::size_t i = 0; i < n; ++i) b[i] = a[i] + b[i];
      return true;
    case MPI_PROD:
      for (std::size_t i = 0; i < n; ++i) b[i] = a[i] * b[i];
      return true;
    case MPI_MIN:
      for (std::size_t i = 0; i < n; ++i) b[i] = a[i] < b[i] ? a[i] : b[i];
      return true;
    case MPI_MAX:
      for (std::size_t i = 0; i < n; ++i) b[i] = a[i] > b[i] ? a[i] : b[i];
      return true;
    default: break;
  }
  if constexpr (integral) {
    switch (o) {
      case MPI_LAND:
        for (std::size_t i = 0; i < n; ++i) b[i] = a[i] && b[i];
        return true;
      case MPI_LOR:
        for (std::size_t i = 0; i < n; ++i) b[i] = a[i] || b[i];
        return true;
      case MPI_LXOR:
        for (std::size_t i = 0; i < n; ++i) b[i] = !a[i] != !b[i];
        return true;
      case MPI_BAND:
        for (std::size_t i = 0; i < n; ++i) b[i] = a[i] & b[i];
        return true;
      case MPI_BOR:
        for (std::size_t i = 0; i < n; ++i) b[i] = a[i] | b[i];
        return true;
      case MPI_BXOR:
        for (std::size_t i = 0; i < n; ++i) b[i] = a[i] ^ b[i];
        return true;
      default: break;
    }
  }
  return false;
}

bool logical(int o, const bool* a, bool* b, std::size_t n) {
  switch (o) {
    case MPI_LAND:
      for (std::size_t i = 0; i < n; ++i) b[i] = a[i] && b[i];
      return true;
    case MPI_LOR:
      for (std::size_t i = 0; i < n; ++i) b[i] = a[i] || b[i];
      return true;
    case MPI_LXOR:
      for (std::size_t i = 0; i < n; ++i) b[i] = a[i] != b[i];
      return true;
    default: return false;
  }
}

bool bitwise(int o, const unsigned char* a, unsigned char* b, std::size_t n) {
  if (o != MPI_BAND && o != MPI_BOR && o != MPI_BXOR) return false;
  return arith<unsigned char>(o, a, b, n);
}

template <typename V>
struct Pair {
  V v;
  int i;
};

// MINLOC: the smaller value, and on a tie the smaller index (MAXLOC alike).
template <typename V>
bool loc(int o, const Pair<V>* a, Pair<V>* b, std::size_t n) {
  if (o != MPI_MINLOC && o != MPI_MAXLOC) return false;
  for (std::size_t i = 0; i < n; ++i) {
    const bool better = o == MPI_MINLOC ? a[i].v < b[i].v : a[i].v > b[i].v;
    if (better || (a[i].v == b[i].v && a[i].i < b[i].i)) b[i] = a[i];
  }
  return true;
}

// inout = in op inout over n elements of the predefined type `base`; false when
// the operator is not defined on it (n may be 0 to ask only that).
bool kernel(int o, int base, const void* in, void* inout, std::size_t n) {
#define FMI_MPI_ARITH(T) return arith<T>(o, static_cast<const T*>(in), static_cast<T*>(inout), n)
#define FMI_MPI_LOC(V) \
  return loc<V>(o, static_cast<const Pair<V>*>(in), static_cast<Pair<V>*>(inout), n)
  switch (base) {
    case MPI_CHAR: FMI_MPI_ARITH(char);
    case MPI_SIGNED_CHAR:
    case MPI_INT8_T: FMI_MPI_ARITH(signed char);
    case MPI_UNSIGNED_CHAR:
    case MPI_UINT8_T: FMI_MPI_ARITH(unsigned char);
    case MPI_SHORT:
    case MPI_INT16_T: FMI_MPI_ARITH(short);
    case MPI_UNSIGNED_SHORT:
    case MPI_UINT16_T: FMI_MPI_ARITH(unsigned short);
    case MPI_INT:
    case MPI_INT32_T: FMI_MPI_ARITH(int);
    case MPI_UNSIGNED:
    case MPI_UINT32_T: FMI_MPI_ARITH(unsigned);
    case MPI_LONG:
    case MPI_AINT: FMI_MPI_ARITH(long);
    case MPI_UNSIGNED_LONG: FMI_MPI_ARITH(unsigned long);
    case MPI_LONG_LONG_INT:
    case MPI_INT64_T:
    case MPI_OFFSET:
    case MPI_COUNT: FMI_MPI_ARITH(long long);
    case MPI_UNSIGNED_LONG_LONG:
    case MPI_UINT64_T: FMI_MPI_ARITH(unsigned long long);
    case MPI_WCHAR: FMI_MPI_ARITH(wchar_t);
    case MPI_FLOAT: FMI_MPI_ARITH(float);
    case MPI_DOUBLE: FMI_MPI_ARITH(double);
    case MPI_LONG_DOUBLE: FMI_MPI_ARITH(long double);
    case MPI_C_BOOL: return logical(o, static_cast<const bool*>(in), static_cast<bool*>(inout), n);
    case MPI_BYTE:
      return bitwise(o, static_cast<const unsigned char*>(in), static_cast<unsigned char*>(inout),
                     n);
    case MPI_FLOAT_INT: FMI_MPI_LOC(float);
    case MPI_DOUBLE_INT: FMI_MPI_LOC(double);
    case MPI_LONG_INT: FMI_MPI_LOC(long);
    case MPI_2INT: FMI_MPI_LOC(int);
    case MPI_SHORT_INT: FMI_MPI_LOC(short);
    case MPI_LONG_DOUBLE_INT: FMI_MPI_LOC(long double);
    default: return false;
  }
#undef FMI_MPI_ARITH
#undef FMI_MPI_LOC
}

struct OpContext {
  MPI_Op op;
  MPI_Datatype type;
};

}  // namespace

void apply_op(MPI_Op o, MPI_Datatype t, const void* in, void* inout, std::size_t n_elems) {
  const OpObj& f = op(o);
  const TypeObj& ty = type(t);
  if (f.fn) {
    int len = static_cast<int>(n_elems);
    MPI_Datatype dt = t;
    f.fn(const_cast<void*>(in), inout, &len, &dt);  // MPI's signature; `in` is not written
    return;
  }
  if (!kernel(o, ty.base, in, inout, n_elems * ty.count))
    FMI_MPI_FAIL(MPI_ERR_OP, "operator ", o, " is not defined on datatype ", ty.name);
}

Utils::ReduceOp reduce_op(MPI_Op o, MPI_Datatype t) {
  const OpObj& f = op(o);
  const TypeObj& ty = type(t);
  if (!f.fn && !kernel(o, ty.base, nullptr, nullptr, 0))
    FMI_MPI_FAIL(MPI_ERR_OP, "the predefined operator ", o, " is not defined on datatype ",
                 ty.name);
  if (ty.size == 0) FMI_MPI_FAIL(MPI_ERR_TYPE, "reduction over an empty datatype");
  // One context per (op, type), kept for the process's lifetime (a map keeps addresses).
  static std::map<std::pair<int, int>, OpContext> contexts;
  const OpContext* ctx = &contexts.try_emplace({o, t}, OpContext{o, t}).first->second;
  Utils::ReduceOp r;
  r.ctx = ctx;
  r.granularity = ty.size;  // MPI operators are element-wise by definition
  r.commutative = f.commutative;
  r.associative = true;  // MPI assumes every operator associative
  r.fn = [](const void* c, Comm::ConstBytes left, Comm::ConstBytes right, Comm::Bytes out) {
    auto* oc = static_cast<const OpContext*>(c);
    const std::size_t n = out.size() / type(oc->type).size;
    if (out.data() == right.data()) {
      apply_op(oc->op, oc->type, left.data(), out.data(), n);
    } else {
      std::vector<std::byte> l;
      const void* lp = left.data();
      if (out.data() == left.data()) {
        l.assign(left.begin(), left.end());
        lp = l.data();
      }
      if (!out.empty()) std::memmove(out.data(), right.data(), out.size());
      apply_op(oc->op, oc->type, lp, out.data(), n);
    }
  };
  return r;
}

// ---- communicators --------------------------------------------------------------

namespace {

std::string env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

// A one-process communicator that never touches the network (MPI_COMM_SELF, the
// singleton world, a group of one).
std::unique_ptr<CommObj> local_comm(const std::string& name, int world_rank) {
  auto c = std::make_unique<CommObj>();
  c->hub = std::make_unique<Comm::InProcessHub>(1);
  c->fmi = std::make_unique<Communicator>(0, 1, Config(), name);
  c->fmi->register_channel("local", c->hub->p2p_endpoint());
  c->world = {world_rank};
  return c;
}

MPI_Comm add_comm(std::unique_ptr<CommObj> c) {
  State& s = state();
  const int h = s.next_comm++;
  s.comms[h] = std::move(c);
  return h;
}

// The members' world ranks of a new FMI communicator: one allgather over it.
std::vector<int> members_of(Communicator& fmi, int world_rank) {
  std::vector<int> all(fmi.num_peers());
  fmi.allgather_bytes(
      Comm::ConstBytes(reinterpret_cast<const std::byte*>(&world_rank), sizeof(int)),
      Comm::Bytes(reinterpret_cast<std::byte*>(all.data()), all.size() * sizeof(int)));
  return all;
}

MPI_Comm wrap(std::unique_ptr<Communicator> fmi, const CommObj& parent) {
  if (!fmi) return MPI_COMM_NULL;
  auto c = std::make_unique<CommObj>();
  c->rank = static_cast<int>(fmi->peer_id());
  c->size = static_cast<int>(fmi->num_peers());
  c->world = members_of(*fmi, parent.world[parent.rank]);
  c->errhandler = parent.errhandler;
  c->fmi = std::move(fmi);
  return add_comm(std::move(c));
}

std::vector<int>& group(MPI_Group g) {
  auto& m = state().groups;
  auto it = m.find(g);
  if (g == MPI_GROUP_NULL || it == m.end()) FMI_MPI_FAIL(MPI_ERR_GROUP, "invalid group ", g);
  return it->second;
}

MPI_Group add_group(std::vector<int> members) {
  State& s = state();
  const int h = s.next_group++;
  s.groups[h] = std::move(members);
  return h;
}

int index_in(const std::vector<int>& members, int world) {
  for (std::size_t i = 0; i < members.size(); ++i)
    if (members[i] == world) return static_cast<int>(i);
  return MPI_UNDEFINED;
}

void fill_types() {
  auto& t = state().types;
  auto add = [&](int h, std::size_t size, const char* name, std::size_t data = 0) {
    t[h] = TypeObj{size, data ? data : size, h, 1, true, true, name};
  };
  add(MPI_CHAR, sizeof(char), "MPI_CHAR");
  add(MPI_SIGNED_CHAR, sizeof(signed char), "MPI_SIGNED_CHAR");
  add(MPI_UNSIGNED_CHAR, sizeof(unsigned char), "MPI_UNSIGNED_CHAR");
  add(MPI_BYTE, 1, "MPI_BYTE");
  add(MPI_SHORT, sizeof(short), "MPI_SHORT");
  add(MPI_UNSIGNED_SHORT, sizeof(unsigned short), "MPI_UNSIGNED_SHORT");
  add(MPI_INT, sizeof(int), "MPI_INT");
  add(MPI_UNSIGNED, sizeof(unsigned), "MPI_UNSIGNED");
  add(MPI_LONG, sizeof(long), "MPI_LONG");
  add(MPI_UNSIGNED_LONG, sizeof(unsigned long), "MPI_UNSIGNED_LONG");
  add(MPI_LONG_LONG_INT, sizeof(long long), "MPI_LONG_LONG");
  add(MPI_UNSIGNED_LONG_LONG, sizeof(unsigned long long), "MPI_UNSIGNED_LONG_LONG");
  add(MPI_FLOAT, sizeof(float), "MPI_FLOAT");
  add(MPI_DOUBLE, sizeof(double), "MPI_DOUBLE");
  add(MPI_LONG_DOUBLE, sizeof(long double), "MPI_LONG_DOUBLE");
  add(MPI_C_BOOL, sizeof(bool), "MPI_C_BOOL");
  add(MPI_WCHAR, sizeof(wchar_t), "MPI_WCHAR");
  add(MPI_INT8_T, 1, "MPI_INT8_T");
  add(MPI_INT16_T, 2, "MPI_INT16_T");
  add(MPI_INT32_T, 4, "MPI_INT32_T");
  add(MPI_INT64_T, 8, "MPI_INT64_T");
  add(MPI_UINT8_T, 1, "MPI_UINT8_T");
  add(MPI_UINT16_T, 2, "MPI_UINT16_T");
  add(MPI_UINT32_T, 4, "MPI_UINT32_T");
  add(MPI_UINT64_T, 8, "MPI_UINT64_T");
  add(MPI_AINT, sizeof(MPI_Aint), "MPI_AINT");
  add(MPI_OFFSET, sizeof(MPI_Offset), "MPI_OFFSET");
  add(MPI_COUNT, sizeof(MPI_Count), "MPI_COUNT");
  add(MPI_PACKED, 1, "MPI_PACKED");
  add(MPI_FLOAT_INT, sizeof(Pair<float>), "MPI_FLOAT_INT", sizeof(float) + sizeof(int));
  add(MPI_DOUBLE_INT, sizeof(Pair<double>), "MPI_DOUBLE_INT", sizeof(double) + sizeof(int));
  add(MPI_LONG_INT, sizeof(Pair<long>), "MPI_LONG_INT", sizeof(long) + sizeof(int));
  add(MPI_2INT, sizeof(Pair<int>), "MPI_2INT");
  add(MPI_SHORT_INT, sizeof(Pair<short>), "MPI_SHORT_INT", sizeof(short) + sizeof(int));
  add(MPI_LONG_DOUBLE_INT, sizeof(Pair<long double>), "MPI_LONG_DOUBLE_INT",
      sizeof(long double) + sizeof(int));
  for (int o = MPI_MAX; o <= MPI_MAXLOC; ++o) state().ops[o] = OpObj{};
}

// Stable 64-bit FNV-1a: every member names a created communicator alike.
std::uint64_t fnv1a(const std::string& s) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : s) h = (h ^ ch) * 1099511628211ull;
  return h;
}

}  // namespace

}  // namespace FMI::Mpi

using namespace FMI::Mpi;
namespace Fmi = FMI;

extern "C" {

int MPI_Init_thread(int* argc, char*** argv, int required, int* provided) {
  (void)argc, (void)argv;
  State& s = state();
  if (s.initialized)
    return handle_error("MPI_Init", MPI_COMM_WORLD, MPI_ERR_OTHER, "MPI_Init called twice");
  try {
    fill_types();
    std::unique_ptr<CommObj> world;
    const char* id = std::getenv("FMI_PEER_ID");
    if (!id || !*id) {
      // Not started by fmirun: a singleton MPI job of one process.
      world = local_comm("mpi-singleton-" + std::to_string(getpid()), 0);
    } else {
      const auto rank = static_cast<Fmi::Utils::peer_num>(std::stoul(id));
      const auto n = static_cast<Fmi::Utils::peer_num>(std::stoul(env_or("FMI_NUM_PEERS", "1")));
      world = std::make_unique<CommObj>();
      world->fmi = std::make_unique<Fmi::Communicator>(
          rank, n, env_or("FMI_CONFIG", "config/fmi.json"), env_or("FMI_COMM_NAME", "fmi-mpi"));
      world->fmi->hint(Fmi::Utils::Hint::fast);  // MPI programs are written for latency
      world->rank = static_cast<int>(rank);
      world->size = static_cast<int>(n);
      for (int i = 0; i < world->size; ++i) world->world.push_back(i);
    }
    world->name = "MPI_COMM_WORLD";
    const int me = world->rank;
    s.comms[MPI_COMM_WORLD] = std::move(world);
    auto self = local_comm(s.comms[MPI_COMM_WORLD]->fmi->comm_name() + "-self", me);
    self->name = "MPI_COMM_SELF";
    s.comms[MPI_COMM_SELF] = std::move(self);
    s.groups[MPI_GROUP_EMPTY] = {};
  } catch (const std::exception& e) {
    return handle_error("MPI_Init", MPI_COMM_WORLD, error_class_of(e), e.what());
  }
  s.initialized = true;
  s.thread_level = required < MPI_THREAD_SERIALIZED ? required : MPI_THREAD_SERIALIZED;
  if (provided) *provided = s.thread_level;
  return MPI_SUCCESS;
}

int MPI_Init(int* argc, char*** argv) {
  int provided;
  return MPI_Init_thread(argc, argv, MPI_THREAD_SINGLE, &provided);
}

int MPI_Initialized(int* flag) {
  *flag = state().initialized;
  return MPI_SUCCESS;
}

int MPI_Finalized(int* flag) {
  *flag = state().finalized;
  return MPI_SUCCESS;
}

int MPI_Finalize(void) {
  return guard("MPI_Finalize", MPI_COMM_WORLD, [] {
    State& s = state();
    CommObj& w = comm(MPI_COMM_WORLD);
    // Collective, as in MPI: no peer finalizes its channels while another may still
    // send to it.
    drop_fmi_requests();
    if (w.size > 1) w.fmi->barrier();
    // Sub-communicators run over the world's channels: they go first.
    while (s.comms.size() > 1) s.comms.erase(std::prev(s.comms.end()));
    s.comms.clear();
    s.finalized = true;
  });
}

int MPI_Abort(MPI_Comm c, int errorcode) {
  (void)c;
  std::fprintf(stderr, "fmi-mpi: rank %d called MPI_Abort with error code %d; aborting the job\n",
               world_rank(), errorcode);
  end_job(errorcode);
}

int MPI_Query_thread(int* provided) {
  *provided = state().thread_level;
  return MPI_SUCCESS;
}

int MPI_Is_thread_main(int* flag) {
  static const pid_t main_tid = gettid();
  *flag = gettid() == main_tid || gettid() == getpid();
  return MPI_SUCCESS;
}

double MPI_Wtime(void) {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

double MPI_Wtick(void) { return 1e-9; }

int MPI_Get_processor_name(char* name, int* resultlen) {
  if (gethostname(name, MPI_MAX_PROCESSOR_NAME) != 0) std::strcpy(name, "localhost");
  name[MPI_MAX_PROCESSOR_NAME - 1] = '\0';
  *resultlen = static_cast<int>(std::strlen(name));
  return MPI_SUCCESS;
}

int MPI_Get_version(int* version, int* subversion) {
  *version = MPI_VERSION;
  *subversion = MPI_SUBVERSION;
  return MPI_SUCCESS;
}

int MPI_Get_library_version(char* version, int* resultlen) {
  const char* v = "FMI MPI layer (libfmi_mpi), MPI 3.1 subset over the FaaS Message Interface";
  std::snprintf(version, MPI_MAX_LIBRARY_VERSION_STRING, "%s", v);
  *resultlen = static_cast<int>(std::strlen(version));
  return MPI_SUCCESS;
}

int MPI_Alloc_mem(MPI_Aint size, MPI_Info info, void* baseptr) {
  (void)info;  // no hints: plain heap memory (FMI's channels need nothing special)
  return guard("MPI_Alloc_mem", MPI_COMM_WORLD, [&] {
    if (size < 0) FMI_MPI_FAIL(MPI_ERR_ARG, "size ", size, " is negative");
    void* p = std::malloc(size > 0 ? static_cast<std::size_t>(size) : 1);
    if (!p) FMI_MPI_FAIL(MPI_ERR_NO_MEM, "cannot allocate ", size, " bytes");
    *static_cast<void**>(baseptr) = p;
  });
}

int MPI_Free_mem(void* base) {
  std::free(base);
  return MPI_SUCCESS;
}

int MPI_Comm_get_attr(MPI_Comm c, int keyval, void* value, int* flag) {
  return guard("MPI_Comm_get_attr", c, [&] {
    comm(c);
    // The values OpenMPI gives: every function may do I/O, none is a host process,
    // and the functions' clocks are not synchronised.
    static int tag_ub = MPI_TAG_UB_VALUE, host = MPI_PROC_NULL, io = MPI_ANY_SOURCE,
               wtime_global = 0;
    int* v = nullptr;
    switch (keyval) {
      case MPI_TAG_UB: v = &tag_ub; break;
      case MPI_HOST: v = &host; break;
      case MPI_IO: v = &io; break;
      case MPI_WTIME_IS_GLOBAL: v = &wtime_global; break;
      default:
        FMI_MPI_FAIL(MPI_ERR_UNSUPPORTED_OPERATION, "keyval ", keyval,
                     " is not a predefined attribute (MPI_TAG_UB, MPI_HOST, MPI_IO, "
                     "MPI_WTIME_IS_GLOBAL); user attributes are not supported");
    }
    *static_cast<int**>(value) = v;
    *flag = 1;
  });
}

int MPI_Attr_get(MPI_Comm c, int keyval, void* value, int* flag) {
  return MPI_Comm_get_attr(c, keyval, value, flag);
}

// ---- errors ------------------------------------------------------------------------

int MPI_Comm_set_errhandler(MPI_Comm c, MPI_Errhandler h) {
  return guard("MPI_Comm_set_errhandler", c, [&] {
    CommObj& co = comm(c);
    if (h != MPI_ERRORS_ARE_FATAL && h != MPI_ERRORS_RETURN)
      FMI_MPI_FAIL(MPI_ERR_ARG, "unknown error handler ", h,
                   " (MPI_ERRORS_ARE_FATAL and MPI_ERRORS_RETURN are supported)");
    co.errhandler = h;
  });
}

int MPI_Comm_get_errhandler(MPI_Comm c, MPI_Errhandler* h) {
  return guard("MPI_Comm_get_errhandler", c, [&] { *h = comm(c).errhandler; });
}

int MPI_Errhandler_free(MPI_Errhandler* h) {
  *h = MPI_ERRHANDLER_NULL;
  return MPI_SUCCESS;
}

int MPI_Error_class(int code, int* cls) {
  if (!class_text(code))
    return handle_error("MPI_Error_class", MPI_COMM_WORLD, MPI_ERR_ARG,
                        "unknown error code " + std::to_string(code));
  *cls = code;
  return MPI_SUCCESS;
}

int MPI_Error_string(int code, char* str, int* resultlen) {
  const char* text = class_text(code);
  if (!text)
    return handle_error("MPI_Error_string", MPI_COMM_WORLD, MPI_ERR_ARG,
                        "unknown error code " + std::to_string(code));
  std::string s = text;
  // The code is its class: the text names the last failure of that class.
  if (!state().last_message[code].empty()) s += " (" + state().last_message[code] + ")";
  std::snprintf(str, MPI_MAX_ERROR_STRING, "%s", s.c_str());
  *resultlen = static_cast<int>(std::strlen(str));
  return MPI_SUCCESS;
}

// ---- communicators ---------------------------------------------------------------

int MPI_Comm_rank(MPI_Comm c, int* rank) {
  return guard("MPI_Comm_rank", c, [&] { *rank = comm(c).rank; });
}

int MPI_Comm_size(MPI_Comm c, int* size) {
  return guard("MPI_Comm_size", c, [&] { *size = comm(c).size; });
}

int MPI_Comm_dup(MPI_Comm c, MPI_Comm* out) {
  return guard("MPI_Comm_dup", c, [&] {
    CommObj& co = comm(c);
    *out = wrap(co.fmi->dup(), co);
  });
}

int MPI_Comm_split(MPI_Comm c, int color, int key, MPI_Comm* out) {
  return guard("MPI_Comm_split", c, [&] {
    CommObj& co = comm(c);
    if (color < 0 && color != MPI_UNDEFINED)
      FMI_MPI_FAIL(MPI_ERR_ARG, "color ", color, " must be >= 0 or MPI_UNDEFINED");
    *out = wrap(co.fmi->split(color == MPI_UNDEFINED ? -1 : color, key), co);
  });
}

int MPI_Comm_create(MPI_Comm c, MPI_Group g, MPI_Comm* out) {
  return guard("MPI_Comm_create", c, [&] {
    CommObj& co = comm(c);
    const std::vector<int>& members = group(g);
    const int r = index_in(members, co.world[co.rank]);
    *out = wrap(co.fmi->split(r == MPI_UNDEFINED ? -1 : 0, r), co);
  });
}

// Collective only over the group, so it cannot split `c` (that needs every member of
// c): the members open a new FMI communicator of their own, named after the world
// communicator, the member list, the tag and how many such communicators they made.
int MPI_Comm_create_group(MPI_Comm c, MPI_Group g, int tag, MPI_Comm* out) {
  return guard("MPI_Comm_create_group", c, [&] {
    CommObj& co = comm(c);
    const std::vector<int>& members = group(g);
    const int me = co.world[co.rank];
    const int r = index_in(members, me);
    if (r == MPI_UNDEFINED) {
      *out = MPI_COMM_NULL;
      return;
    }
    for (int m : members)
      if (index_in(co.world, m) == MPI_UNDEFINED)
        FMI_MPI_FAIL(MPI_ERR_GROUP, "the group holds world rank ", m,
                     ", not a member of the communicator");
    std::string list = std::to_string(tag);
    for (int m : members) list += "," + std::to_string(m);
    CommObj& w = comm(MPI_COMM_WORLD);
    const int nth = w.created[list]++;
    char suffix[64];
    std::snprintf(suffix, sizeof suffix, "-g%016llx-%d",
                  static_cast<unsigned long long>(fnv1a(list)), nth);
    const std::string name = w.fmi->comm_name() + suffix;
    std::unique_ptr<CommObj> n;
    if (members.size() == 1) {
      n = local_comm(name, me);
    } else {
      n = std::make_unique<CommObj>();
      n->fmi = std::make_unique<Fmi::Communicator>(
          static_cast<unsigned>(r), static_cast<unsigned>(members.size()), w.fmi->config(), name);
      n->fmi->hint(Fmi::Utils::Hint::fast);
      n->rank = r;
      n->size = static_cast<int>(members.size());
      n->world = members;
    }
    n->errhandler = co.errhandler;
    *out = add_comm(std::move(n));
  });
}

int MPI_Comm_free(MPI_Comm* c) {
  return guard("MPI_Comm_free", *c, [&] {
    comm(*c);
    if (*c == MPI_COMM_WORLD || *c == MPI_COMM_SELF)
      FMI_MPI_FAIL(MPI_ERR_COMM, "MPI_COMM_WORLD and MPI_COMM_SELF cannot be freed");
    state().comms.erase(*c);
    *c = MPI_COMM_NULL;
  });
}

int MPI_Comm_compare(MPI_Comm a, MPI_Comm b, int* result) {
  return guard("MPI_Comm_compare", a, [&] {
    const CommObj& x = comm(a);
    const CommObj& y = comm(b);
    if (a == b) {
      *result = MPI_IDENT;
    } else if (x.world == y.world) {
      *result = MPI_CONGRUENT;
    } else {
      *result = std::set<int>(x.world.begin(), x.world.end()) ==
                        std::set<int>(y.world.begin(), y.world.end())
                    ? MPI_SIMILAR
                    : MPI_UNEQUAL;
    }
  });
}

int MPI_Comm_set_name(MPI_Comm c, const char* name) {
  return guard("MPI_Comm_set_name", c,
               [&] { comm(c).name = std::string(name).substr(0, MPI_MAX_OBJECT_NAME - 1); });
}

int MPI_Comm_get_name(MPI_Comm c, char* name, int* resultlen) {
  return guard("MPI_Comm_get_name", c, [&] {
    std::snprintf(name, MPI_MAX_OBJECT_NAME, "%s", comm(c).name.c_str());
    *resultlen = static_cast<int>(std::strlen(name));
  });
}

// ---- groups ------------------------------------------------------------------------

int MPI_Comm_group(MPI_Comm c, MPI_Group* g) {
  return guard("MPI_Comm_group", c, [&] { *g = add_group(comm(c).world); });
}

int MPI_Group_size(MPI_Group g, int* size) {
  return guard("MPI_Group_size", MPI_COMM_WORLD,
               [&] { *size = static_cast<int>(group(g).size()); });
}

int MPI_Group_rank(MPI_Group g, int* rank) {
  return guard("MPI_Group_rank", MPI_COMM_WORLD, [&] {
    const CommObj& w = comm(MPI_COMM_WORLD);
    *rank = index_in(group(g), w.world[w.rank]);
  });
}

int MPI_Group_incl(MPI_Group g, int n, const int ranks[], MPI_Group* out) {
  return guard("MPI_Group_incl", MPI_COMM_WORLD, [&] {
    const std::vector<int>& in = group(g);
    if (n < 0 || n > static_cast<int>(in.size()))
      FMI_MPI_FAIL(MPI_ERR_ARG, "n = ", n, " out of range");
    std::vector<int> members;
    for (int i = 0; i < n; ++i) {
      if (ranks[i] < 0 || ranks[i] >= static_cast<int>(in.size()))
        FMI_MPI_FAIL(MPI_ERR_RANK, "ranks[", i, "] = ", ranks[i], " is not a rank of the group of ",
                     in.size());
      if (index_in(members, in[ranks[i]]) != MPI_UNDEFINED)
        FMI_MPI_FAIL(MPI_ERR_RANK, "ranks[", i, "] = ", ranks[i], " appears twice");
      members.push_back(in[ranks[i]]);
    }
    *out = add_group(std::move(members));
  });
}

int MPI_Group_excl(MPI_Group g, int n, const int ranks[], MPI_Group* out) {
  return guard("MPI_Group_excl", MPI_COMM_WORLD, [&] {
    const std::vector<int>& in = group(g);
    std::vector<bool> drop(in.size());
    for (int i = 0; i < n; ++i) {
      if (ranks[i] < 0 || ranks[i] >= static_cast<int>(in.size()))
        FMI_MPI_FAIL(MPI_ERR_RANK, "ranks[", i, "] = ", ranks[i], " is not a rank of the group of ",
                     in.size());
      drop[ranks[i]] = true;
    }
    std::vector<int> members;
    for (std::size_t i = 0; i < in.size(); ++i)
      if (!drop[i]) members.push_back(in[i]);
    *out = add_group(std::move(members));
  });
}

int MPI_Group_translate_ranks(MPI_Group g1, int n, const int ranks1[], MPI_Group g2, int ranks2[]) {
  return guard("MPI_Group_translate_ranks", MPI_COMM_WORLD, [&] {
    const std::vector<int>& a = group(g1);
    const std::vector<int>& b = group(g2);
    for (int i = 0; i < n; ++i) {
      if (ranks1[i] == MPI_PROC_NULL) {
        ranks2[i] = MPI_PROC_NULL;
        continue;
      }
      if (ranks1[i] < 0 || ranks1[i] >= static_cast<int>(a.size()))
        FMI_MPI_FAIL(MPI_ERR_RANK, "ranks1[", i, "] = ", ranks1[i], " is not a rank of group 1");
      ranks2[i] = index_in(b, a[ranks1[i]]);
    }
  });
}

int MPI_Group_free(MPI_Group* g) {
  return guard("MPI_Group_free", MPI_COMM_WORLD, [&] {
    group(*g);
    if (*g != MPI_GROUP_EMPTY) state().groups.erase(*g);
    *g = MPI_GROUP_NULL;
  });
}

// ---- datatypes and operators ---------------------------------------------------------

int MPI_Type_size(MPI_Datatype t, int* size) {
  return guard("MPI_Type_size", MPI_COMM_WORLD, [&] {
    auto it = state().types.find(t);
    if (it == state().types.end()) FMI_MPI_FAIL(MPI_ERR_TYPE, "invalid datatype ", t);
    *size = static_cast<int>(it->second.data);
  });
}

int MPI_Type_get_extent(MPI_Datatype t, MPI_Aint* lb, MPI_Aint* extent) {
  return guard("MPI_Type_get_extent", MPI_COMM_WORLD, [&] {
    auto it = state().types.find(t);
    if (it == state().types.end()) FMI_MPI_FAIL(MPI_ERR_TYPE, "invalid datatype ", t);
    *lb = 0;  // only contiguous types exist: the extent is the size
    *extent = static_cast<MPI_Aint>(it->second.size);
  });
}

int MPI_Type_contiguous(int count, MPI_Datatype old, MPI_Datatype* out) {
  return guard("MPI_Type_contiguous", MPI_COMM_WORLD, [&] {
    if (count < 0) FMI_MPI_FAIL(MPI_ERR_COUNT, "negative count ", count);
    const TypeObj o = type(old);
    State& s = state();
    const int h = s.next_type++;
    s.types[h] = TypeObj{o.size * count, o.data * count, o.base,      o.count * count,
                         false,          false,          "contiguous"};
    *out = h;
  });
}

int MPI_Type_commit(MPI_Datatype* t) {
  return guard("MPI_Type_commit", MPI_COMM_WORLD, [&] {
    auto it = state().types.find(*t);
    if (it == state().types.end()) FMI_MPI_FAIL(MPI_ERR_TYPE, "invalid datatype ", *t);
    it->second.committed = true;
  });
}

int MPI_Type_free(MPI_Datatype* t) {
  return guard("MPI_Type_free", MPI_COMM_WORLD, [&] {
    auto it = state().types.find(*t);
    if (it == state().types.end()) FMI_MPI_FAIL(MPI_ERR_TYPE, "invalid datatype ", *t);
    if (it->second.predefined) FMI_MPI_FAIL(MPI_ERR_TYPE, "a predefined datatype cannot be freed");
    state().types.erase(it);
    *t = MPI_DATATYPE_NULL;
  });
}

int MPI_Op_create(MPI_User_function* fn, int commute, MPI_Op* out) {
  return guard("MPI_Op_create", MPI_COMM_WORLD, [&] {
    if (!fn) FMI_MPI_FAIL(MPI_ERR_ARG, "user function is null");
    State& s = state();
    const int h = s.next_op++;
    s.ops[h] = OpObj{fn, commute != 0};
    *out = h;
  });
}

int MPI_Op_free(MPI_Op* o) {
  return guard("MPI_Op_free", MPI_COMM_WORLD, [&] {
    const OpObj& f = op(*o);
    if (!f.fn) FMI_MPI_FAIL(MPI_ERR_OP, "a predefined operator cannot be freed");
    state().ops.erase(*o);
    *o = MPI_OP_NULL;
  });
}

int MPI_Op_commutative(MPI_Op o, int* commute) {
  return guard("MPI_Op_commutative", MPI_COMM_WORLD, [&] { *commute = op(o).commutative; });
}

int MPI_Reduce_local(const void* in, void* inout, int count, MPI_Datatype t, MPI_Op o) {
  return guard("MPI_Reduce_local", MPI_COMM_WORLD, [&] {
    bytes(count, t);  // checks count and type
    reduce_op(o, t);  // MPI_ERR_OP when the operator is not defined on the type
    if (count > 0) apply_op(o, t, in, inout, static_cast<std::size_t>(count));
  });
}

}  // extern "C"
