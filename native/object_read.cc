// BpfObject's reading verbs: program and map fds, a program's kernel-side
// info, map lookups, and test runs (also for worker threads by fd).
#include "object.h"

namespace js {

// Runs a program once with BPF_PROG_TEST_RUN, on `cpu` if >= 0 by pinning this
// thread there for the call (syscall programs take no CPU flag).
static int TestRunFd(int fd, int cpu, int *retval) {
  cpu_set_t old, want;
  bool pinned = false;
  if (cpu >= 0) {
    if (sched_getaffinity(0, sizeof(old), &old)) return -errno;
    CPU_ZERO(&want);
    CPU_SET(cpu, &want);
    if (sched_setaffinity(0, sizeof(want), &want)) return -errno;
    pinned = true;
  }
  LIBBPF_OPTS(bpf_test_run_opts, opts);
  int err = bpf_prog_test_run_opts(fd, &opts);
  if (err) err = -errno;
  if (pinned) sched_setaffinity(0, sizeof(old), &old);
  *retval = opts.retval;
  return err;
}

Napi::Value BpfObject::ProgramFd(const Napi::CallbackInfo &info) {
  bpf_program *p = Prog(info, 0);
  if (!p) return info.Env().Undefined();
  return Napi::Number::New(info.Env(), bpf_program__fd(p));
}

Napi::Value BpfObject::MapFd(const Napi::CallbackInfo &info) {
  bpf_map *m = Map(info, 0);
  if (!m) return info.Env().Undefined();
  return Napi::Number::New(info.Env(), bpf_map__fd(m));
}

Napi::Value BpfObject::ProgramInfo(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  bpf_program *p = Prog(info, 0);
  if (!p) return env.Undefined();
  int fd = bpf_program__fd(p);
  if (fd < 0) {
    ThrowBpf(env, std::string("program info of ") + bpf_program__name(p) + ": not loaded", EBADF);
    return env.Undefined();
  }
  struct bpf_prog_info pi;
  memset(&pi, 0, sizeof(pi));
  __u32 len = sizeof(pi);
  if (bpf_obj_get_info_by_fd(fd, &pi, &len)) {
    ThrowBpf(env, std::string("program info of ") + bpf_program__name(p), -errno);
    return env.Undefined();
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("id", pi.id);
  o.Set("name", pi.name);
  o.Set("runTimeNs", static_cast<double>(pi.run_time_ns));
  o.Set("runCount", static_cast<double>(pi.run_cnt));
  o.Set("recursionMisses", static_cast<double>(pi.recursion_misses));
  return o;
}

Napi::Value BpfObject::Lookup(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  bpf_map *m = Map(info, 0);
  if (!m) return env.Undefined();
  if (info.Length() < 2 || !info[1].IsBuffer()) {
    ThrowType(env, "lookup(map, key): key must be a Buffer");
    return env.Undefined();
  }
  auto key = info[1].As<Napi::Buffer<uint8_t>>();
  if (key.Length() != bpf_map__key_size(m)) {
    ThrowType(env, std::string("lookup ") + bpf_map__name(m) + ": key must be " +
                       std::to_string(bpf_map__key_size(m)) + " bytes");
    return env.Undefined();
  }
  size_t n = ValueBytes(m);
  Napi::Buffer<uint8_t> out = Napi::Buffer<uint8_t>::New(env, n);
  if (bpf_map_lookup_elem(bpf_map__fd(m), key.Data(), out.Data())) {
    int err = errno;
    if (err == ENOENT) return env.Null();
    ThrowBpf(env, std::string("lookup ") + bpf_map__name(m), err);
    return env.Undefined();
  }
  return out;
}

Napi::Value BpfObject::TestRun(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  bpf_program *p = Prog(info, 0);
  if (!p) return env.Undefined();
  int cpu = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : -1;
  int retval = 0;
  int err = TestRunFd(bpf_program__fd(p), cpu, &retval);
  if (err) {
    ThrowBpf(env, std::string("run ") + bpf_program__name(p) + (cpu >= 0 ? " on CPU " + std::to_string(cpu) : ""),
             err);
    return env.Undefined();
  }
  return Napi::Number::New(env, retval);
}

// testRunFd(fd, cpu): for worker threads that hold only a program fd.
Napi::Value TestRunFdJs(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = info[0].ToNumber().Int32Value();
  int cpu = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : -1;
  int retval = 0;
  int err = TestRunFd(fd, cpu, &retval);
  if (err) {
    ThrowBpf(env, "run program fd " + std::to_string(fd), err);
    return env.Undefined();
  }
  return Napi::Number::New(env, retval);
}

}  // namespace js
