// Errors that cross into JavaScript carry the failing step and errno, and the
// tail of libbpf's log (the verifier's last words when a load fails).
#include "common.h"

#include <bpf/libbpf.h>
#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <deque>
#include <mutex>

namespace js {
namespace {
std::mutex logMutex;
std::deque<std::string> logLines;  // bounded: the newest lines win
const size_t kMaxLogLines = 4000;

int LibbpfPrint(enum libbpf_print_level level, const char *fmt, va_list args) {
  if (level == LIBBPF_DEBUG) return 0;
  // one message can be a whole verifier log (kilobytes): size it first, so its
  // last lines, the ones that say why, are not cut off
  va_list again;
  va_copy(again, args);
  int n = vsnprintf(nullptr, 0, fmt, args);
  if (n <= 0) {
    va_end(again);
    return 0;
  }
  std::string text(static_cast<size_t>(n) + 1, '\0');
  vsnprintf(&text[0], text.size(), fmt, again);
  va_end(again);
  text.resize(static_cast<size_t>(n));
  std::lock_guard<std::mutex> g(logMutex);
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    std::string line = text.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
    if (!line.empty()) logLines.push_back(line);
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  while (logLines.size() > kMaxLogLines) logLines.pop_front();
  return 0;
}

const char *ErrnoName(int e) {
  switch (e) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case ESRCH: return "ESRCH";
    case EINTR: return "EINTR";
    case EIO: return "EIO";
    case E2BIG: return "E2BIG";
    case EBADF: return "EBADF";
    case EAGAIN: return "EAGAIN";
    case ENOMEM: return "ENOMEM";
    case EACCES: return "EACCES";
    case EFAULT: return "EFAULT";
    case EBUSY: return "EBUSY";
    case EEXIST: return "EEXIST";
    case ENODEV: return "ENODEV";
    case EINVAL: return "EINVAL";
    case ENOSPC: return "ENOSPC";
    case ERANGE: return "ERANGE";
    case ENOSYS: return "ENOSYS";
    case ENOTSUP: return "ENOTSUP";
    case 524: return "ENOTSUPP"; // the kernel's own "not supported" (e.g. fentry without direct calls on arm64 6.1)
    case ESTALE: return "ESTALE";
    case ENOTTY: return "ENOTTY";
    case ENOEXEC: return "ENOEXEC";
    default: return "EUNKNOWN";
  }
}
}  // namespace

void InstallLibbpfLogger() { libbpf_set_print(LibbpfPrint); }

std::string TakeLibbpfLog() {
  std::lock_guard<std::mutex> g(logMutex);
  std::string out;
  for (auto &l : logLines) out += l + "\n";
  logLines.clear();
  return out;
}

std::string LibbpfLogTail(size_t maxLines) {
  std::lock_guard<std::mutex> g(logMutex);
  std::string out;
  size_t from = logLines.size() > maxLines ? logLines.size() - maxLines : 0;
  for (size_t i = from; i < logLines.size(); i++) out += logLines[i] + "\n";
  return out;
}

void ThrowBpf(Napi::Env env, const std::string &step, int err, const std::string &detail) {
  if (env.IsExceptionPending()) return;
  int e = err < 0 ? -err : err;
  std::string message = step + ": " + ErrnoName(e) + " (" + strerror(e) + ")";
  AddonData *data = env.GetInstanceData<AddonData>();
  Napi::Object info = Napi::Object::New(env);
  info.Set("step", step);
  info.Set("errno", Napi::Number::New(env, e));
  info.Set("code", ErrnoName(e));
  info.Set("detail", detail);
  if (data && !data->errorClass.IsEmpty()) {
    Napi::Value obj = data->errorClass.New({Napi::String::New(env, message), info});
    if (env.IsExceptionPending()) return;
    Napi::Error(env, obj).ThrowAsJavaScriptException();
    return;
  }
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("step", step);
  error.Set("errno", Napi::Number::New(env, e));
  error.Set("code", ErrnoName(e));
  error.ThrowAsJavaScriptException();
}

void ThrowType(Napi::Env env, const std::string &message) {
  if (env.IsExceptionPending()) return;
  Napi::TypeError::New(env, message).ThrowAsJavaScriptException();
}

}  // namespace js
