import { AdminService } from "@coffer/api";
import { useMutation } from "@connectrpc/connect-query";
import { useQueryClient } from "@tanstack/react-query";
import { Link, useNavigate } from "@tanstack/react-router";
import { type FormEvent, useState } from "react";
import { describeError } from "../api/errors.ts";
import { isGlobalAdmin, useCaller } from "../session/caller.ts";
import { useProjects, useRegions } from "../session/projects.ts";
import { readLastPlace } from "../session/session.ts";
import { ProblemMessage, QueryState } from "../ui/problem.tsx";
import { useTitle } from "../ui/title.ts";

/** Screen 2: pick a project and a region (admins can create a project). */
export function ProjectsScreen() {
  useTitle("Projects");
  const caller = useCaller();
  const projects = useProjects();
  const regions = useRegions();
  const last = readLastPlace();
  const [chosen, setChosen] = useState<string | undefined>(last?.region);
  const region = chosen ?? regions.data?.defaultRegion ?? regions.data?.regions[0];

  return (
    <div className="page narrow">
      <div className="page-head">
        <div>
          <h1>Projects</h1>
          <p className="muted">Choose the project and the region to work in.</p>
        </div>
      </div>

      <section className="card" aria-labelledby="region-heading">
        <h2 id="region-heading" className="card-title">
          Region
        </h2>
        <QueryState query={regions} what="regions" />
        {regions.data && (
          <div className="field field-inline">
            <label htmlFor="region">Region</label>
            <select
              id="region"
              value={region}
              onChange={(e) => setChosen(e.target.value)}
              aria-describedby="region-help"
            >
              {regions.data.regions.map((r) => (
                <option key={r} value={r}>
                  {r}
                  {r === regions.data.defaultRegion ? " (default)" : ""}
                </option>
              ))}
            </select>
            <p id="region-help" className="hint">
              Each region keeps its own data. Secrets cannot be moved from one region to another
              after creation.
            </p>
          </div>
        )}
      </section>

      <section className="card" aria-labelledby="projects-heading">
        <h2 id="projects-heading" className="card-title">
          Choose a project
        </h2>
        <QueryState query={projects} what="projects" />
        {!projects.isPending && projects.projects.length === 0 && !projects.error && (
          <p className="empty">
            No project yet.{" "}
            {isGlobalAdmin(caller.data)
              ? "Create one below."
              : "Ask an admin for a token with a grant on a project."}
          </p>
        )}
        {region !== undefined && projects.projects.length > 0 && (
          <ul className="project-list">
            {projects.projects.map((p) => (
              <li key={p.id}>
                <Link
                  to="/p/$projectId/$region/secrets"
                  params={{ projectId: p.id, region }}
                  className="project-link"
                >
                  <span className="project-name">{p.name}</span>
                  <span className="project-id mono">{p.id}</span>
                </Link>
              </li>
            ))}
          </ul>
        )}
      </section>

      {isGlobalAdmin(caller.data) && region !== undefined && <CreateProject region={region} />}
    </div>
  );
}

function CreateProject({ region }: { region: string }) {
  const [name, setName] = useState("");
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const create = useMutation(AdminService.method.createProject, {
    onSuccess: async (res) => {
      await queryClient.invalidateQueries();
      if (res.project) {
        await navigate({
          to: "/p/$projectId/$region/secrets",
          params: { projectId: res.project.id, region },
        });
      }
    },
  });
  const problem = create.error ? describeError(create.error) : undefined;
  function submit(e: FormEvent) {
    e.preventDefault();
    create.mutate({ name: name.trim() });
  }
  return (
    <section className="card" aria-labelledby="new-project-heading">
      <h2 id="new-project-heading" className="card-title">
        Create a project
      </h2>
      <form onSubmit={submit} className="inline-form">
        <div className="field">
          <label htmlFor="project-name">Project name</label>
          <input
            id="project-name"
            value={name}
            maxLength={255}
            onChange={(e) => setName(e.target.value)}
            aria-invalid={problem !== undefined}
            aria-describedby={problem ? "project-name-error" : undefined}
          />
        </div>
        <button
          type="submit"
          className="btn btn-primary"
          disabled={create.isPending || name.trim() === ""}
        >
          Create project
        </button>
      </form>
      <ProblemMessage error={create.error} id="project-name-error" />
    </section>
  );
}
