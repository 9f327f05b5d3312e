import { QueryClientProvider, type QueryClient } from '@tanstack/react-query'
import { makeQueryClient } from './queryClient'
import { BrowserRouter, NavLink, Route, Routes } from 'react-router-dom'
import { KeyPrompt } from './components/common/KeyPrompt'
import { JobPage } from './components/job/JobPage'
import { JobsList } from './components/jobs/JobsList'
import { TrainingTab } from './components/training/TrainingTab'

export function Layout() {
  return (
    <>
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <span className="brand">Agent Skill Adapter</span>
        <nav aria-label="Main">
          <NavLink to="/" end>
            Training
          </NavLink>
          <NavLink to="/jobs">Jobs</NavLink>
        </nav>
        <a className="api-docs" href="/docs">
          API docs
        </a>
      </header>
      <KeyPrompt />
      <main id="main">
        <Routes>
          <Route path="/" element={<TrainingTab />} />
          <Route path="/jobs" element={<JobsList />} />
          <Route path="/jobs/:jobId" element={<JobPage />} />
          <Route
            path="*"
            element={
              <p role="alert">
                No such page. <NavLink to="/">Go to the Training tab.</NavLink>
              </p>
            }
          />
        </Routes>
      </main>
    </>
  )
}

export default function App({ client = makeQueryClient() }: { client?: QueryClient }) {
  return (
    <QueryClientProvider client={client}>
      <BrowserRouter>
        <Layout />
      </BrowserRouter>
    </QueryClientProvider>
  )
}
