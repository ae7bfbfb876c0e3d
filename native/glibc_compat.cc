// Lets one Linux x86-64 build of the addon load on every glibc from 2.28 on, whichever glibc built it.
//
// glibc 2.34 moved libdl and libpthread into libc and gave their functions new symbol versions
// (dlopen@@GLIBC_2.34, pthread_create@@GLIBC_2.34, ...), and libstdc++ from glibc 2.32 on reads
// __libc_single_threaded; a binary linked on a newer glibc asks for those versions and fails to load on an
// older one. CMakeLists.txt links libstdc++ statically and passes `-Wl,--wrap=NAME` for each function below, so
// every call to NAME (ours and libstdc++'s) lands in __wrap_NAME, which calls NAME bound to its original
// GLIBC_2.2.5 version. Newer glibc still exports those versions (the same functions), and older ones find them
// in libdl.so.2 and libpthread.so.0, which the addon names as needed libraries. test/runtime/glibc-symbols.test.ts
// fails when the built addon asks for any glibc symbol version newer than 2.28.
#if defined(FORECASTD_GLIBC_COMPAT)

#include <dlfcn.h>
#include <pthread.h>

#define FORECASTD_HIDDEN __attribute__((visibility("hidden")))
// Declares forecastd_glibc_NAME as NAME@GLIBC_2.2.5.
#define FORECASTD_OLD_SYMBOL(name) __asm__(".symver forecastd_glibc_" #name ", " #name "@GLIBC_2.2.5");

extern "C" {

FORECASTD_OLD_SYMBOL(dlopen)
void* forecastd_glibc_dlopen(const char* file, int mode);
FORECASTD_HIDDEN void* __wrap_dlopen(const char* file, int mode) { return forecastd_glibc_dlopen(file, mode); }

FORECASTD_OLD_SYMBOL(dlsym)
void* forecastd_glibc_dlsym(void* handle, const char* name);
FORECASTD_HIDDEN void* __wrap_dlsym(void* handle, const char* name) { return forecastd_glibc_dlsym(handle, name); }

FORECASTD_OLD_SYMBOL(dlerror)
char* forecastd_glibc_dlerror(void);
FORECASTD_HIDDEN char* __wrap_dlerror(void) { return forecastd_glibc_dlerror(); }

FORECASTD_OLD_SYMBOL(dladdr)
int forecastd_glibc_dladdr(const void* address, Dl_info* info);
FORECASTD_HIDDEN int __wrap_dladdr(const void* address, Dl_info* info) { return forecastd_glibc_dladdr(address, info); }

FORECASTD_OLD_SYMBOL(dlclose)
int forecastd_glibc_dlclose(void* handle);
FORECASTD_HIDDEN int __wrap_dlclose(void* handle) { return forecastd_glibc_dlclose(handle); }

FORECASTD_OLD_SYMBOL(pthread_create)
int forecastd_glibc_pthread_create(pthread_t* thread, const pthread_attr_t* attr, void* (*start)(void*), void* arg);
FORECASTD_HIDDEN int __wrap_pthread_create(pthread_t* thread, const pthread_attr_t* attr, void* (*start)(void*), void* arg) {
  return forecastd_glibc_pthread_create(thread, attr, start, arg);
}

FORECASTD_OLD_SYMBOL(pthread_detach)
int forecastd_glibc_pthread_detach(pthread_t thread);
FORECASTD_HIDDEN int __wrap_pthread_detach(pthread_t thread) { return forecastd_glibc_pthread_detach(thread); }

FORECASTD_OLD_SYMBOL(pthread_join)
int forecastd_glibc_pthread_join(pthread_t thread, void** result);
FORECASTD_HIDDEN int __wrap_pthread_join(pthread_t thread, void** result) { return forecastd_glibc_pthread_join(thread, result); }

FORECASTD_OLD_SYMBOL(pthread_once)
int forecastd_glibc_pthread_once(pthread_once_t* control, void (*init)(void));
FORECASTD_HIDDEN int __wrap_pthread_once(pthread_once_t* control, void (*init)(void)) {
  return forecastd_glibc_pthread_once(control, init);
}

FORECASTD_OLD_SYMBOL(pthread_key_create)
int forecastd_glibc_pthread_key_create(pthread_key_t* key, void (*destructor)(void*));
FORECASTD_HIDDEN int __wrap_pthread_key_create(pthread_key_t* key, void (*destructor)(void*)) {
  return forecastd_glibc_pthread_key_create(key, destructor);
}

FORECASTD_OLD_SYMBOL(pthread_key_delete)
int forecastd_glibc_pthread_key_delete(pthread_key_t key);
FORECASTD_HIDDEN int __wrap_pthread_key_delete(pthread_key_t key) { return forecastd_glibc_pthread_key_delete(key); }

FORECASTD_OLD_SYMBOL(pthread_getspecific)
void* forecastd_glibc_pthread_getspecific(pthread_key_t key);
FORECASTD_HIDDEN void* __wrap_pthread_getspecific(pthread_key_t key) { return forecastd_glibc_pthread_getspecific(key); }

FORECASTD_OLD_SYMBOL(pthread_setspecific)
int forecastd_glibc_pthread_setspecific(pthread_key_t key, const void* value);
FORECASTD_HIDDEN int __wrap_pthread_setspecific(pthread_key_t key, const void* value) {
  return forecastd_glibc_pthread_setspecific(key, value);
}

// libstdc++'s headers read this glibc 2.32 flag to skip atomic reference counting in single-threaded
// processes. The addon always runs threads, so "not single-threaded" is always true; defining it here keeps
// the reference inside the addon.
FORECASTD_HIDDEN char __libc_single_threaded = 0;

}  // extern "C"

#endif
