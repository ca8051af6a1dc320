// BpfObject's declaration, shared by the files that define its verbs:
// object.cc (open, close, the class table), object_config.cc (configure, load,
// attach) and object_read.cc (fds, program info, map lookups, test runs).
#pragma once
#include "common.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <malloc.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <vector>

namespace js {

class BpfObject : public Napi::ObjectWrap<BpfObject> {
 public:
  static Napi::Function Define(Napi::Env env);

  explicit BpfObject(const Napi::CallbackInfo &info);

  ~BpfObject() override { Destroy(); }

 private:
  static void CleanupHook(void *arg) { static_cast<BpfObject *>(arg)->Destroy(); }

  void Destroy();

  bool Alive(Napi::Env env);

  bpf_program *Prog(const Napi::CallbackInfo &info, size_t i);

  bpf_map *Map(const Napi::CallbackInfo &info, size_t i);

  Napi::Value Programs(const Napi::CallbackInfo &info);

  Napi::Value SetAutoload(const Napi::CallbackInfo &info);

  // Writes a global variable (const volatile in .rodata, or .data/.bss) by
  // name, before load. The buffer must match the variable's size exactly.
  Napi::Value SetGlobal(const Napi::CallbackInfo &info);

  Napi::Value SetMapMaxEntries(const Napi::CallbackInfo &info);

  // Makes this object's map use an existing map fd (e.g. another object's ring
  // buffer), before load.
  Napi::Value ReuseMap(const Napi::CallbackInfo &info);

  Napi::Value Load(const Napi::CallbackInfo &info);

  // Attaches a program where its section says; the link lives until close().
  // Returns the number of links this object holds.
  Napi::Value Attach(const Napi::CallbackInfo &info);

  Napi::Value ProgramFd(const Napi::CallbackInfo &info);

  Napi::Value MapFd(const Napi::CallbackInfo &info);

  // Kernel-side identity and cost of a loaded program (run_time_ns counts only
  // while kernel.bpf_stats_enabled=1).
  Napi::Value ProgramInfo(const Napi::CallbackInfo &info);

  size_t ValueBytes(bpf_map *m) {
    size_t v = bpf_map__value_size(m);
    switch (bpf_map__type(m)) {
      case BPF_MAP_TYPE_PERCPU_ARRAY:
      case BPF_MAP_TYPE_PERCPU_HASH:
      case BPF_MAP_TYPE_LRU_PERCPU_HASH:
        return ((v + 7) / 8 * 8) * libbpf_num_possible_cpus();
      default:
        return v;
    }
  }

  // Reads one entry; per-CPU maps return every possible CPU's value, each
  // padded to 8 bytes. Returns null when the key is absent.
  Napi::Value Lookup(const Napi::CallbackInfo &info);

  Napi::Value TestRun(const Napi::CallbackInfo &info);

  Napi::Value Close(const Napi::CallbackInfo &info);

  std::string name_;
  bpf_object *obj_ = nullptr;
  bool loaded_ = false;
  bool hookInstalled_ = false;
  napi_env env_ = nullptr;
  std::vector<bpf_link *> links_;

 public:
  static BpfObject *FromValue(Napi::Env env, Napi::Value v);
  bpf_map *FindMap(Napi::Env env, const std::string &n);
};

// testRunFd(fd, cpu): for worker threads that hold only a program fd.
Napi::Value TestRunFdJs(const Napi::CallbackInfo &info);

}  // namespace js
